"""Optuna storages by URI, for one process or for several workers sharing one study.

- ``sqlite:///PATH``, ``postgresql://...`` (any SQLAlchemy URL): Optuna's ``RDBStorage``. SQLite suits
  one process or a few workers on one machine: writers take turns on one file lock and may see
  ``database is locked`` under load. PostgreSQL (or MySQL) serves workers on many machines.
- ``journal:PATH``: ``JournalStorage`` on an append-only file (``JournalFileBackend``), safe for many
  processes on one machine or a shared file system, with no database server.

Each trial records the ``host:pid`` of the process running it (``WORKER_ATTR``), so that a trial left
running by a process that died on the same host is failed by the next process that looks (see
``optuna_driver.fail_dead_trials``). A process that died on another host is not detected.
"""

from __future__ import annotations

import functools

from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from headsearch.errors import HeadsearchError

JOURNAL = "journal:"


@functools.cache
def optuna_storage(uri: str) -> BaseStorage:
    """The storage for ``uri``, one object per URI and process (Optuna storages hold connections and caches)."""
    if uri.startswith(JOURNAL):
        path = uri[len(JOURNAL):]
        if not path:
            raise HeadsearchError("A journal storage needs a file: journal:PATH, e.g. journal:runs/study.journal.")
        try:
            return JournalStorage(JournalFileBackend(path))
        except OSError as exc:
            raise HeadsearchError(f"Cannot open the journal storage {path!r} ({exc.strerror}); create its folder or "
                                  "choose a writable path.") from exc
    if "://" not in uri:
        raise HeadsearchError(f"Unknown storage {uri!r}: use sqlite:///PATH, postgresql://... or journal:PATH.")
    try:
        return RDBStorage(uri)
    except Exception as exc:  # SQLAlchemy raises many types for a bad URL or an unreachable server
        raise HeadsearchError(f"Cannot open the Optuna storage {uri!r} ({type(exc).__name__}: {exc}).") from exc

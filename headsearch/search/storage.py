"""Optuna storages by URI, for one process or for several workers sharing one study.

- ``sqlite:///PATH``, ``postgresql://...`` (any SQLAlchemy URL): Optuna's ``RDBStorage``. SQLite suits
  one process or a few workers on one machine: writers take turns on one file lock and may see
  ``database is locked`` under load. PostgreSQL (or MySQL) serves workers on many machines.
- ``journal:PATH``: ``JournalStorage`` on an append-only file (``JournalFileBackend``), safe for many
  processes on one machine or a shared file system, with no database server.

A trial left running by a process that died is failed by the next process that looks: on the same host by its pid,
on any host (RDB storages) for want of heartbeats (``headsearch.search.liveness``). Workers started together on an
empty database race to create Optuna's tables; the losers retry and use the winner's.
"""

from __future__ import annotations

import functools
import random
import time

from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend

from headsearch.errors import HeadsearchError
from headsearch.search.liveness import rdb_storage

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
    for attempt in range(CREATE_ATTEMPTS):
        try:
            return rdb_storage(uri)
        except Exception as exc:  # SQLAlchemy raises many types for a bad URL or an unreachable server
            if _lost_schema_race(exc) and attempt + 1 < CREATE_ATTEMPTS:
                time.sleep(random.uniform(0.2, 1.0))  # another worker is creating Optuna's tables: use them
                continue
            raise HeadsearchError(f"Cannot open the Optuna storage {uri!r} ({type(exc).__name__}: "
                                  f"{(str(exc).splitlines() or [''])[0]}).") from exc
    raise AssertionError("unreachable")


CREATE_ATTEMPTS = 5


def _lost_schema_race(exc: Exception) -> bool:
    """Workers started together on an empty database all create Optuna's tables; all but one then fail with a
    duplicate table or type (PostgreSQL: ``UniqueViolation`` on ``pg_type``, ``DuplicateTable``)."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    return isinstance(exc, IntegrityError | ProgrammingError) and ("already exists" in str(exc) or "duplicate" in str(exc))

"""Trials whose process is gone: found by the next process that looks, failed, and their parameters run again.

- On the same host a trial's process is known by its ``host:pid`` (``WORKER_ATTR``): gone when the pid is.
- On any host, with an RDB storage (SQLite, PostgreSQL, MySQL): the process running a trial records a heartbeat in
  Optuna's heartbeat table every ``HEARTBEAT_S`` (``heartbeat``); a running trial whose last heartbeat is older than
  ``GRACE_S`` by the database's clock (hosts' clocks do not matter) is stale: its host or process was lost.
  A journal storage has no heartbeats, so there a trial lost on another host stays RUNNING.

A killed trial is failed with the reason, recorded in the study's user attributes (``killed:N``), and its parameters
are enqueued to run again (``rerun_killed``); it no longer counts towards ``n_trials``.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from headsearch._process import died_here
from headsearch.search.samplers import RERUN_ATTR

WORKER_ATTR = "worker"  # host:pid of the process running a trial
HEARTBEAT_S = 30  # how often a running trial's process records that it lives
GRACE_S = 180  # a running trial silent for longer is failed: a slow database may delay a few heartbeats
UNNAMED_GRACE_S = 60.0  # a trial that never named its process may be between ask() and naming itself
KILLED_PREFIX = "killed:"  # study user attribute killed:N = why trial N was killed


def killed_trials(study: optuna.Study) -> dict[int, str]:
    """Trial number -> why it was killed (it does not count, and its parameters were enqueued again)."""
    return {int(k.removeprefix(KILLED_PREFIX)): v for k, v in study.user_attrs.items() if k.startswith(KILLED_PREFIX)}


def rerun_killed(study: optuna.Study, number: int, params: Mapping[str, Any], reason: str) -> None:
    study.set_user_attr(f"{KILLED_PREFIX}{number}", reason)
    study.enqueue_trial(dict(params), user_attrs={RERUN_ATTR: number})


def fail_dead_trials(study: optuna.Study) -> list[tuple[int, dict[str, Any], str]]:
    """Fail the study's running trials whose process is gone: on this host (pid no longer alive), on any host (no
    heartbeat for ``GRACE_S``), or never named (older than ``UNNAMED_GRACE_S``); enqueue their parameters again and
    return each one's number, parameters and reason. Trials of live processes are left alone."""
    dead = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get(WORKER_ATTR)
        if worker is None:
            started = t.datetime_start or datetime.datetime.now()
            if (datetime.datetime.now() - started).total_seconds() < UNNAMED_GRACE_S:
                continue
            reason = "killed: its process died before naming itself"
        elif died_here(worker):
            reason = f"killed: its process {worker} died"
        else:
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except ValueError:  # another worker failed it at the same moment, and reruns it
            continue
        rerun_killed(study, t.number, t.params, reason)
        dead.append((t.number, dict(t.params), reason))
    _stale.clear()
    with warnings.catch_warnings():  # experimental since Optuna 2.9, still so in 5.1
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # calls on_stale for each trial it failed, in this process only
    dead.extend(_stale)
    return dead


_stale: list[tuple[int, dict[str, Any], str]] = []  # trials fail_stale_trials failed here, for fail_dead_trials


def on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's callback for a trial it failed for want of heartbeats (only the process that failed it is called)."""
    reason = f"killed: no heartbeat from {trial.user_attrs.get(WORKER_ATTR, 'its process')} for over {GRACE_S} s " \
             "(its process or host was lost)"
    rerun_killed(study, trial.number, trial.params, reason)
    _stale.append((trial.number, dict(trial.params), reason))


def ask(study: optuna.Study) -> optuna.Trial:
    """``study.ask()``, without Optuna's warning that heartbeats are meant for ``optimize``: here the process that runs
    the trial beats (``heartbeat``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        return study.ask()


def rdb_storage(url: str) -> RDBStorage:
    """Optuna's RDB storage at ``url`` with heartbeats on (stale trials rerun by ``on_stale``)."""
    with warnings.catch_warnings():  # heartbeat_interval is an experimental argument since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, heartbeat_stale_trial_callback=on_stale)


@contextlib.contextmanager
def heartbeat(storage: BaseStorage | None, study_name: str, number: int) -> Iterator[None]:
    """While inside, record trial ``number``'s heartbeat every ``HEARTBEAT_S`` from a background thread (RDB storages;
    nothing elsewhere). A failed write is skipped: the next one may succeed, and the trial must not die of it."""
    if not isinstance(storage, RDBStorage) or storage.get_heartbeat_interval() is None:
        yield
        return
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):
                storage.record_heartbeat(trial_id)
            if stop.wait(storage.get_heartbeat_interval()):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{study_name}-{number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()

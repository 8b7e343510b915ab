"""Several `headsearch worker` processes on one study and one storage: no trial lost or run twice, a killed
worker's trial failed, the study completed by the others."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from tiny_study import PLUGINS, write_study

from headsearch.errors import HeadsearchError
from headsearch.search.storage import optuna_storage


def _study(tmp_path: Path, n_trials: int) -> Path:
    return write_study(tmp_path, [{"name": "slow-heads", "n_trials": n_trials}], name="shared", sampler="random")


def _worker(study: Path, storage: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "headsearch", "worker", str(study), "--storage", storage],
                            env={**os.environ, "PYTHONPATH": str(PLUGINS), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    optuna_storage.cache_clear()  # a fresh view of the file
    return optuna.load_study(study_name="shared:slow-heads", storage=optuna_storage(storage)).get_trials(deepcopy=False)


@pytest.mark.slow
def test_two_workers_share_one_study_without_losing_or_repeating_trials(tmp_path):
    storage = f"journal:{tmp_path / 'study.journal'}"
    study = _study(tmp_path, n_trials=8)
    workers = [_worker(study, storage, SLOW_S="1.5") for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    trials = _trials(storage)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 8  # exactly the study's trials: a surplus one a race hands out is given back
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert len({t.number for t in complete}) == 8
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both workers ran trials
    assert (tmp_path / "run" / "run.json").is_file() and (tmp_path / "run" / "report.md").is_file()


@pytest.mark.slow
def test_killed_worker_trial_is_failed_and_the_study_completes(tmp_path):
    storage = f"journal:{tmp_path / 'study.journal'}"
    study = _study(tmp_path, n_trials=5)
    doomed = _worker(study, storage, SLOW_AFTER="2", SLOW_S="600")  # 2 quick trials, then hangs
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if (tmp_path / "study.journal").exists():
            try:
                states = [t.state for t in _trials(storage)]
            except KeyError:  # the journal file exists before the worker's study is recorded in it
                time.sleep(0.5)
                continue
            if states.count(TrialState.COMPLETE) == 2 and TrialState.RUNNING in states:
                break
        time.sleep(0.5)
    else:
        doomed.kill()
        pytest.fail(f"the first worker never reached its third trial: {doomed.communicate()[0]}")
    finished_before = {t.number: t.values for t in _trials(storage) if t.state == TrialState.COMPLETE}
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()

    rescuer = _worker(study, storage)
    output = rescuer.communicate(timeout=300)[0]
    assert rescuer.returncode == 0, output
    trials = _trials(storage)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["worker"].endswith(f":{doomed.pid}")
    complete = {t.number: t for t in trials if t.state == TrialState.COMPLETE}
    assert len(complete) == 5  # the killed trial does not count: its parameters ran again
    assert finished_before.items() <= {n: t.values for n, t in complete.items()}.items()  # nothing finished was lost
    rerun = [t for t in complete.values() if t.user_attrs.get("rerun_of") == failed[0].number]
    assert len(rerun) == 1 and rerun[0].params == failed[0].params


def test_unknown_storage_is_a_clear_error():
    with pytest.raises(HeadsearchError, match="journal:PATH"):
        optuna_storage("runs/study.db")


def test_only_trials_of_dead_processes_are_failed(tmp_path):
    import socket

    from headsearch.search.liveness import WORKER_ATTR, fail_dead_trials

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    study = optuna.create_study(storage=optuna_storage(f"journal:{tmp_path / 'j.journal'}"), directions=["maximize"])
    owners = {"dead": f"{host}:{gone.stdout.strip()}", "alive": f"{host}:{os.getpid()}", "elsewhere": "other-host:1",
              "unnamed": None}
    numbers = {}
    for label, owner in owners.items():
        trial = study.ask()
        if owner is not None:
            trial.set_user_attr(WORKER_ATTR, owner)
        numbers[label] = trial.number
    # a fresh unnamed trial may be a worker between ask and naming itself
    assert [number for number, _, _ in fail_dead_trials(study)] == [numbers["dead"]]
    states = {label: study.trials[n].state for label, n in numbers.items()}
    assert states == {"dead": TrialState.FAIL, "alive": TrialState.RUNNING, "elsewhere": TrialState.RUNNING,
                      "unnamed": TrialState.RUNNING}


def test_a_trial_whose_heartbeats_stop_is_failed_from_any_host_and_its_parameters_rerun(monkeypatch, tmp_path):
    """Two trials run on another host (no pid to check here); one's heartbeats stop (its host lost), the other's go
    on. After the grace period the silent one is failed, once, and its parameters enqueued; the other is left alone.
    SQLite's clock counts whole seconds: beats every 1 s, grace 3 s, checked 4.5 s after the last beat."""
    from headsearch.search import liveness

    monkeypatch.setattr(liveness, "HEARTBEAT_S", 1)
    monkeypatch.setattr(liveness, "GRACE_S", 3)
    storage = optuna_storage.__wrapped__(f"sqlite:///{tmp_path / 'beats.db'}")  # uncached: built with those settings
    study = optuna.create_study(study_name="beats", storage=storage, directions=["maximize"])
    lost, alive = liveness.ask(study), liveness.ask(study)
    for trial in (lost, alive):
        trial.suggest_int("k", 1, 4)
        trial.set_user_attr(liveness.WORKER_ATTR, "other-host:1")
    with liveness.heartbeat(storage, "beats", lost.number):
        time.sleep(0.2)  # one beat, then its host is lost
    with liveness.heartbeat(storage, "beats", alive.number):
        time.sleep(4.5)
        dead = liveness.fail_dead_trials(study)
        assert liveness.fail_dead_trials(study) == []  # failed once
    assert [(number, params) for number, params, _ in dead] == [(lost.number, lost.params)]
    assert "no heartbeat from other-host:1" in dead[0][2] and liveness.killed_trials(study) == {lost.number: dead[0][2]}
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert trials[2].user_attrs["rerun_of"] == lost.number and trials[2].system_attrs["fixed_params"] == lost.params


def test_a_worker_that_loses_the_race_to_create_the_tables_uses_the_winners(monkeypatch, tmp_path):
    """Workers started together on an empty PostgreSQL all create Optuna's tables; the losers' duplicate-table error
    is retried (tests/test_postgres_workers.py meets the real race); any other error is one line at once."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    from headsearch.search import storage as storage_module

    calls = []

    def racing(uri):
        calls.append(uri)
        if len(calls) == 1:
            raise IntegrityError("CREATE TABLE alembic_version", {}, Exception('relation "alembic_version" already exists'))
        return "storage"

    monkeypatch.setattr(storage_module, "rdb_storage", racing)
    monkeypatch.setattr(storage_module.time, "sleep", lambda s: None)
    optuna_storage.cache_clear()
    assert optuna_storage("postgresql://db/one") == "storage" and len(calls) == 2

    def unreachable(uri):
        calls.append(uri)
        raise OperationalError("connect", {}, Exception("connection refused"))

    monkeypatch.setattr(storage_module, "rdb_storage", unreachable)
    calls.clear()
    with pytest.raises(HeadsearchError, match="Cannot open the Optuna storage"):
        optuna_storage("postgresql://db/two")
    assert len(calls) == 1
    optuna_storage.cache_clear()

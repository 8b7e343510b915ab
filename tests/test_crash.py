"""A study killed twice (kill -9, then SIGTERM) and resumed: Optuna and MLflow agree, nothing lost, nothing
run twice, nothing left RUNNING, and the study ends with its n_trials completed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from tiny_study import PLUGINS, write_study

from headsearch.search.storage import optuna_storage
from headsearch.study import load_points, load_run

N_TRIALS = 5


def _start(study: Path, control: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "headsearch", "run", str(study), *extra],
                            env={**os.environ, "PYTHONPATH": str(PLUGINS), "SLOW_CONTROL": str(control)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    optuna_storage.cache_clear()  # a fresh view of the database
    return _study(storage).get_trials(deepcopy=False)


def _study(storage: str) -> optuna.Study:
    return optuna.load_study(study_name="crash:slow-heads", storage=optuna_storage(storage))


def _wait_for(storage: Path, process: subprocess.Popen, complete: int) -> None:
    """Until the storage holds ``complete`` finished trials and one running (the one that hangs)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the run ended early: {process.communicate()}")
        if storage.exists():
            try:
                states = [t.state for t in _trials(f"sqlite:///{storage}")]
            except KeyError:  # the database exists before the study is recorded in it
                states = []
            if states.count(TrialState.COMPLETE) == complete and TrialState.RUNNING in states:
                return
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"never reached {complete} finished trials: {process.communicate()}")


@pytest.mark.slow
def test_killed_twice_then_resumed_the_study_completes_and_optuna_and_mlflow_agree(tmp_path):
    study = write_study(tmp_path, [{"name": "slow-heads", "n_trials": N_TRIALS}], name="crash", sampler="random")
    control, db = tmp_path / "control.json", tmp_path / "run" / "optuna.db"
    control.write_text(json.dumps({"SLOW_AFTER": 2, "SLOW_S": 600}))  # per process: 2 quick trials, then one hangs

    first = _start(study, control)
    _wait_for(db, first, complete=2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    info = load_run(tmp_path / "run")  # a killed run folder is readable: run.json is written before the first trial
    assert len(load_points(tmp_path / "run")) == 2 and info["storage"] == f"sqlite:///{db}"

    second = _start(study, control, "--resume")  # reruns the killed trial's parameters, then one more, then hangs
    _wait_for(db, second, complete=4)
    second.send_signal(signal.SIGTERM)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 143 and err.strip().splitlines()[-1].startswith("error: stopped (SIGTERM)"), err

    control.write_text(json.dumps({"SLOW_S": 0}))
    third = _start(study, control, "--resume")
    out, err = third.communicate(timeout=300)
    assert third.returncode == 0, err

    storage = f"sqlite:///{db}"
    trials = _trials(storage)
    complete = {t.number: t for t in trials if t.state == TrialState.COMPLETE}
    failed = {t.number: t for t in trials if t.state == TrialState.FAIL}
    assert len(complete) == N_TRIALS and not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    killed = {int(k.split(":")[1]): v for k, v in _study(storage).user_attrs.items() if k.startswith("killed:")}
    assert set(killed) == set(failed) and len(failed) == 2
    assert any("died" in reason for reason in killed.values()) and "killed: SIGTERM during the trial" in killed.values()
    reruns = {t.user_attrs["rerun_of"]: t for t in complete.values() if "rerun_of" in t.user_attrs}
    assert set(reruns) == set(failed)
    for number, rerun in reruns.items():  # the killed trial's parameters ran again
        assert rerun.params == failed[number].params

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("headsearch/crash")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    trial_runs = [r for r in runs if "trial" in r.data.tags]
    logged_complete = [int(r.data.tags["trial"]) for r in trial_runs if r.data.tags["status"] == "complete"]
    assert sorted(logged_complete) == sorted(complete)  # none lost, none twice
    logged_killed = {int(r.data.tags["trial"]): r for r in trial_runs if r.data.tags["status"] == "killed"}
    assert set(logged_killed) == set(failed) and all(r.data.tags["error"].startswith("killed") for r in logged_killed.values())
    parents = sorted((r for r in runs if r.data.tags.get("mlflow.runName") == "crash"), key=lambda r: r.info.start_time)
    assert [r.info.status for r in parents] == ["FAILED", "KILLED", "FINISHED"]
    assert "killed: its process" in parents[0].data.tags["error"]

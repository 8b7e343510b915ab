"""The Ray Tune driver on a real local Ray instance (2 CPUs): the same trials as the Optuna driver, trials
run concurrently, the early-stopping rule stopping outranked trials, everything in the same Optuna storage and MLflow store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from tiny_study import PLUGINS, write_study

from headsearch.pareto import non_dominated
from headsearch.search.rungs import rung_points
from headsearch.search.storage import optuna_storage
from headsearch.study import load_points, load_run, run_study
from headsearch.study_config import load_study

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a local Ray instance and whole studies: run by `pytest -m slow` (and .ci/run)


@pytest.fixture(scope="module")
def slow_control(tmp_path_factory) -> Path:
    """The file the slow-heads plug-in reads its settings from, in this process and in Ray's workers."""
    return tmp_path_factory.mktemp("control") / "slow.json"


@pytest.fixture(scope="module", autouse=True)
def local_ray(slow_control):
    """One local Ray for the module; its workers find the test plug-ins through PYTHONPATH."""
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGINS), path) if p)
    os.environ["SLOW_CONTROL"] = str(slow_control)  # workers get the environment of Ray's start
    sys.path.insert(0, str(PLUGINS))  # and so does this process (entry points are read from sys.path)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()
    sys.path.remove(str(PLUGINS))
    del os.environ["SLOW_CONTROL"]
    if path is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = path


def quiet(*_args, **_kw):
    pass


def _trials(run, strategy):
    info = load_run(run)
    optuna_storage.cache_clear()
    study = optuna.load_study(study_name=f"{info['name']}:{strategy}", storage=optuna_storage(info["storage"]))
    return study.get_trials(deepcopy=False)


def _mlflow_trials(tmp_path, name="tiny"):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return [r for r in mlflow.search_runs(experiment_names=[f"headsearch/{name}"], output_format="list")
            if "trial" in r.data.tags]


def test_ray_runs_the_same_trials_and_fronts_as_optuna(tmp_path):
    """Same study and seed, one trial at a time: identical parameters, objectives and fronts (accuracy and
    FLOPs: latency is measured, so it differs from run to run)."""
    strategies = [{"name": "random", "n_trials": 4}, {"name": "importance", "n_trials": 3}]
    runs = {}
    for driver in ("optuna", "ray"):
        folder = tmp_path / driver
        folder.mkdir()
        config = load_study(write_study(folder, strategies, objectives=["accuracy", "flops"], sampler="tpe"))
        runs[driver] = run_study(config, progress=False, echo=quiet, driver=driver, max_concurrent=1)
    for strategy in ("random", "importance"):
        by_driver = {d: _trials(run, strategy) for d, run in runs.items()}
        assert [t.state for t in by_driver["ray"]] == [TrialState.COMPLETE] * len(by_driver["optuna"])
        assert [t.params for t in by_driver["ray"]] == [t.params for t in by_driver["optuna"]]
        assert [t.values for t in by_driver["ray"]] == [t.values for t in by_driver["optuna"]]
        assert [t.user_attrs["head_config"] for t in by_driver["ray"]] == [t.user_attrs["head_config"]
                                                                             for t in by_driver["optuna"]]
        assert all(t.user_attrs["hardware"] == by_driver["optuna"][0].user_attrs["hardware"] for t in by_driver["ray"])
    fronts = {d: sorted((p.strategy, p.trial) for p in non_dominated(load_points(run))) for d, run in runs.items()}
    assert fronts["ray"] == fronts["optuna"] and fronts["ray"]
    # every Ray trial is an MLflow run nested under its strategy's run, as with the Optuna driver
    logged = _mlflow_trials(tmp_path / "ray")
    assert sorted((r.data.tags["strategy"], int(r.data.tags["trial"])) for r in logged) == [
        *((s, n) for s, k in (("importance", 3), ("random", 4)) for n in range(k))]
    assert all(r.data.tags["driver"] == "ray" and r.data.tags["status"] == "complete" for r in logged)
    # the report and export read a Ray run like any other
    for args in (["show", str(runs["ray"])], ["export", str(runs["ray"]), "--pick", "knee"]):
        done = subprocess.run([sys.executable, "-m", "headsearch", *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert (runs["ray"] / "report.md").is_file() and (runs["ray"] / "export" / "head_config.json").is_file()


def test_two_trials_run_at_once_on_two_cpus(tmp_path, slow_control):
    """With --max-concurrent 2, trials overlap in time (each sleeps 1.5 s in its proposal), and the study
    ends with exactly its trials, run by two Ray workers."""
    config = load_study(write_study(tmp_path, [{"name": "slow-heads", "n_trials": 4}]))
    slow_control.write_text(json.dumps({"SLOW_S": 1.5, "GENERATION": str(tmp_path)}))
    try:
        run = run_study(config, progress=False, echo=quiet, driver="ray", max_concurrent=2)
    finally:
        slow_control.unlink()
    trials = _trials(run, "slow-heads")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(a_end > b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert len(load_points(run)) == 4


def test_killed_ray_worker_fails_its_trial_and_the_study_completes(tmp_path, slow_control):
    """A Ray worker killed in its third trial: that trial is FAIL (and an MLflow run with the Ray error), not counted:
    its parameters run again in a new worker, the two it finished stay, and the study ends with its 4 trials."""
    config = load_study(write_study(tmp_path, [{"name": "slow-heads", "n_trials": 4}]))
    # per worker: 2 quick trials, then hangs (a new generation: a worker reused from an earlier test starts at 0)
    slow_control.write_text(json.dumps({"SLOW_AFTER": 2, "SLOW_S": 600, "GENERATION": str(tmp_path)}))
    storage, killed = f"sqlite:///{tmp_path / 'run' / 'optuna.db'}", []

    def kill_the_hanging_worker() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            time.sleep(0.3)
            try:
                optuna_storage.cache_clear()
                trials = optuna.load_study(study_name="tiny:slow-heads", storage=optuna_storage(storage)).trials
            except Exception:  # the storage or the study does not exist yet
                continue
            # the driver asks for the trial before a worker takes it: wait until a worker has written its pid
            hung = [t for t in trials if t.state == TrialState.RUNNING and t.number == 2 and "worker" in t.user_attrs
                    and not t.user_attrs["worker"].endswith(f":{os.getpid()}")]
            if hung:
                time.sleep(0.5)  # inside its proposal
                killed.append(int(hung[0].user_attrs["worker"].rpartition(":")[2]))
                os.kill(killed[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_the_hanging_worker, daemon=True)
    killer.start()
    try:
        run = run_study(config, progress=False, echo=quiet, driver="ray", max_concurrent=1)
    finally:
        slow_control.unlink()
    killer.join(timeout=5)
    trials = _trials(run, "slow-heads")
    assert killed and [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] + [TrialState.COMPLETE] * 2
    assert trials[2].user_attrs["worker"] == trials[0].user_attrs["worker"] == trials[1].user_attrs["worker"]
    assert trials[3].user_attrs["worker"] != trials[2].user_attrs["worker"]  # a fresh worker took over
    assert trials[3].user_attrs["rerun_of"] == 2 and trials[3].params == trials[2].params
    statuses = {int(r.data.tags["trial"]): r.data.tags["status"] for r in _mlflow_trials(tmp_path)}
    assert statuses == {0: "complete", 1: "complete", 2: "failed", 3: "complete", 4: "complete"}


def test_ray_scheduler_stops_outranked_trials_by_the_studys_rule_and_optuna_records_them_pruned(tmp_path):
    """A strategy that reports (accuracy, heads) per epoch: Ray Tune's scheduler applies the study's MO-ASHA
    rule to the rung records in the storage; stopped trials are kept as PRUNED with their last report, logged
    to MLflow as pruned, and count; the others complete."""
    config = load_study(write_study(tmp_path, [{"name": "progress-probe", "n_trials": 8}],
                                    objectives=["accuracy", "flops"], early_stopping={"rule": "mo_asha", "eta": 2}))
    run = run_study(config, progress=False, echo=quiet, driver="ray", max_concurrent=1)
    trials = _trials(run, "progress-probe")
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(pruned) + len(complete) == 8 and pruned and complete
    rungs = config.early_stopping.rungs()
    for t in trials:  # one trial at a time: each met the rung records of the trials numbered before it
        stopped = t.user_attrs.get("stopped_early")
        for rung in [r for r in rungs.levels if r <= (stopped["rung"] if stopped else 4)]:
            point = tuple(t.user_attrs[f"rung:{rung}"])
            assert point[0] == pytest.approx(t.params["quality"])
            others = rung_points([u for u in trials if u.number < t.number], rung, exclude=t.number)
            assert rungs.promote(point, others) == (not stopped or rung < stopped["rung"])
        if stopped:
            assert stopped["accuracy"] == pytest.approx(t.params["quality"]) and "objectives" not in t.user_attrs
    assert all(t.user_attrs["info"]["quality"] == t.params["quality"] for t in complete)
    statuses = {int(r.data.tags["trial"]): r.data.tags["status"] for r in _mlflow_trials(tmp_path)}
    assert statuses == {t.number: "pruned" if t.state == TrialState.PRUNED else "complete" for t in trials}
    assert len(load_points(run)) == len(complete)


def test_unknown_driver_and_ray_options_without_ray_are_refused(tmp_path):
    study = write_study(tmp_path, [{"name": "random", "n_trials": 1}])
    for args, message in ((["--driver", "dask"], "--driver 'dask' is not known"),
                          (["--max-concurrent", "2"], "apply to --driver ray")):
        result = subprocess.run([sys.executable, "-m", "headsearch", "run", str(study), *args], capture_output=True, text=True)
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # nothing half-written

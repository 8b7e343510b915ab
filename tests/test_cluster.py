"""A study on a real Ray cluster (a head and two worker nodes started with ``ray start`` on loopback), its storage a
real PostgreSQL server and its tracking a real MLflow server backed by PostgreSQL (``tests/local_services.py``):
every trial completed once, none left RUNNING in Optuna or MLflow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import optuna
import pytest
import ray
from local_services import create_database, missing_postgres, mlflow_server, postgres_server, ray_cluster
from optuna.trial import TrialState
from tiny_study import PLUGINS, write_study

from headsearch.search.ray_driver import ray_instance

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing_postgres() is not None, reason=str(missing_postgres()))]

TRIALS = 6


def _finished_runs(tracking_uri: str, experiment: str) -> tuple[list, list]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)
    return runs, [r for r in runs if r.info.status == "RUNNING"]


def test_a_study_on_a_ray_cluster_with_postgresql_and_an_mlflow_server(tmp_path):
    with postgres_server() as storage, \
            mlflow_server(create_database(storage, "mlflow"), tmp_path / "mlflow") as (tracking_uri, _), \
            ray_cluster(workers=2) as (address, env):
        study = write_study(tmp_path, [{"name": "random", "n_trials": TRIALS}], name="cluster", sampler="random",
                            storage=storage, tracking_uri=tracking_uri)
        run = subprocess.run([sys.executable, "-m", "headsearch", "run", str(study), "--driver", "ray", "--address",
                              address], capture_output=True, text=True, timeout=900, env=env)
        assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
        trials = optuna.load_study(study_name="cluster:random", storage=storage).get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(complete) == TRIALS and len({t.number for t in complete}) == TRIALS
        assert not [t for t in trials if t.state == TrialState.RUNNING]
        runs, running = _finished_runs(tracking_uri, "headsearch/cluster")
        assert not running
        names = {r.info.run_name for r in runs if r.info.status == "FINISHED" and r.info.run_name.startswith("random-")}
        assert names == {f"random-{t.number}" for t in complete}
        assert len({t.user_attrs["worker"] for t in complete}) >= 2  # trials ran in several Ray workers

        with ray_instance(None):  # no --address: a new local instance, not the cluster ``ray start`` runs here
            assert ray.get_runtime_context().gcs_address != address


def _states(storage: str, study_name: str) -> list[TrialState]:
    try:
        return [t.state for t in optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)]
    except KeyError:  # the run has not created the study yet
        return []


def _wait_for(condition, what: str, process: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended before {what}: {process.communicate()[0][-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def _raylets() -> list[int]:
    """This machine's raylet processes, oldest first (the head's, then the worker nodes' in start order)."""
    found = subprocess.run(["pgrep", "-f", "raylet/raylet"], capture_output=True, text=True).stdout.split()
    return sorted(int(pid) for pid in found)


def _draws(storage: str, name: str) -> list[tuple]:
    """(parameters, objectives) of each completed trial, sorted (parameters may repeat: 16 head sets here)."""
    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted((tuple(sorted(t.params.items())), tuple(t.values)) for t in trials)


def _front(draws: list[tuple]) -> set[tuple]:
    """The non-dominated (accuracy, FLOPs) points: accuracy up, FLOPs down."""
    points = {values for _, values in draws}
    return {v for v in points if not any(o[0] >= v[0] and o[1] <= v[1] and o != v for o in points)}


def test_faults_on_the_cluster_lose_no_trial_and_leave_nothing_running(tmp_path):
    """The MLflow server killed for 5 s, then a worker node's raylet killed, while trials run: the run still ends with
    ``n_trials`` completed (the dead node's trials failed and run again). Then the study is topped up, its driver
    killed mid-run and resumed. At the end every trial that finished is kept and logged once, the dead ones are
    failed, ``n_trials`` complete, and neither Optuna nor MLflow holds a RUNNING trial or run. The same study run
    without faults on the same seed (random draws, objectives accuracy and FLOPs: deterministic) completes the same
    parameters with the same objectives: the same front."""
    trials, name = 10, "faults:slow-heads"
    control = tmp_path / "slow.json"  # the plug-in's delay, read at each proposal by Ray's workers
    control.write_text(json.dumps({"SLOW_S": 3}))
    model = {"max_length": 16, "train": {"epochs": 1, "train_rows": 200},
             "builtin": {"num_layers": 2, "num_heads": 4, "hidden_size": 16, "intermediate_size": 32}}
    fields = {"sampler": "random", "seed": 5, "objectives": ["accuracy", "flops"], "model": model}
    (tmp_path / "faults").mkdir(), (tmp_path / "calm").mkdir()
    with postgres_server() as storage, \
            mlflow_server(create_database(storage, "mlflow"), tmp_path / "mlflow") as (tracking_uri, server), \
            ray_cluster(workers=2, env={"PYTHONPATH": str(PLUGINS), "SLOW_CONTROL": str(control)}) as (address, env):
        study = write_study(tmp_path / "faults", [{"name": "slow-heads", "n_trials": trials}], name="faults",
                            storage=storage, tracking_uri=tracking_uri, **fields)
        command = [sys.executable, "-m", "headsearch", "run", str(study), "--driver", "ray", "--address", address]
        run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _wait_for(lambda: _states(storage, name).count(TrialState.COMPLETE) >= 2, "two trials completed", run)
        server.stop(signal.SIGKILL)  # tracking unreachable while trials end
        time.sleep(5)
        server.start()
        _wait_for(lambda: _states(storage, name).count(TrialState.COMPLETE) >= 4, "four trials completed", run)
        os.kill(_raylets()[-1], signal.SIGKILL)  # a worker node dies with its running trial
        output = run.communicate(timeout=900)[0]
        assert run.returncode == 0, output[-3000:]
        after_node = _states(storage, name)
        assert TrialState.RUNNING not in after_node and after_node.count(TrialState.FAIL) >= 1
        assert after_node.count(TrialState.COMPLETE) == trials  # the dead node's trials ran again in the same run

        trials += 4
        more = [*command, "--resume", "--n-trials", str(trials)]
        run = subprocess.Popen(more, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _wait_for(lambda: TrialState.RUNNING in _states(storage, name), "a resumed trial running", run)
        run.kill()  # the driver dies: its trials stay RUNNING until a resumed run fails them
        run.wait()
        resumed = subprocess.run(more, env=env, capture_output=True, text=True, timeout=900)
        assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]

        study_trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        complete = [t for t in study_trials if t.state == TrialState.COMPLETE]
        assert len(complete) == trials and len({t.number for t in complete}) == trials
        assert {t.state for t in study_trials} <= {TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED}
        runs, running = _finished_runs(tracking_uri, "headsearch/faults")
        assert not running, [(r.info.run_name, r.info.status) for r in running]
        # a trial's run carries its outcome in the tag "status"; a trial killed with its driver left no run at all
        finished = [r.info.run_name for r in runs if r.data.tags.get("status") == "complete"]
        assert sorted(finished) == sorted(f"slow-heads-{t.number}" for t in complete)  # each logged once

        control.write_text(json.dumps({"SLOW_S": 0}))
        calm = write_study(tmp_path / "calm", [{"name": "slow-heads", "n_trials": trials}], name="calm",
                           storage=storage, tracking_uri=tracking_uri, **fields)
        shutil.copytree(tmp_path / "faults" / "run" / "model", tmp_path / "calm" / "run" / "model")  # one dense model
        reference = subprocess.run([sys.executable, "-m", "headsearch", "run", str(calm), "--driver", "ray",
                                    "--address", address], env=env, capture_output=True, text=True, timeout=900)
        assert reference.returncode == 0, (reference.stdout + reference.stderr)[-3000:]
        faulted, calm_draws = _draws(storage, name), _draws(storage, "calm:slow-heads")
        assert len(calm_draws) == trials and faulted == calm_draws  # the same parameters, the same objectives
        assert _front(faulted) == _front(calm_draws)

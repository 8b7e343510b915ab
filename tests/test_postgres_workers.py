"""Many workers on a real PostgreSQL storage with a real MLflow tracking server backed by PostgreSQL (both started
on loopback in a temporary folder, ``tests/local_services.py``): no ``database is locked``, no trial lost or run
twice, no run left RUNNING."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from local_services import create_database, missing_postgres, mlflow_server, postgres_server
from optuna.trial import TrialState
from tiny_study import PLUGINS, write_study

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing_postgres() is not None, reason=str(missing_postgres()))]

WORKERS, TRIALS = 4, 12


def test_four_workers_on_postgresql_and_an_mlflow_server(tmp_path):
    from mlflow.tracking import MlflowClient

    with postgres_server() as storage, \
            mlflow_server(create_database(storage, "mlflow"), tmp_path / "mlflow") as (tracking_uri, _):
        study = write_study(tmp_path, [{"name": "slow-heads", "n_trials": TRIALS}], name="shared", sampler="random",
                            storage=storage, tracking_uri=tracking_uri)
        env = {**os.environ, "PYTHONPATH": str(PLUGINS), "SLOW_S": "0.5"}
        workers = [subprocess.Popen([sys.executable, "-m", "headsearch", "worker", str(study), "--storage", storage], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(WORKERS)]
        outputs = [w.communicate(timeout=600)[0] for w in workers]
        assert [w.returncode for w in workers] == [0] * WORKERS, outputs[-1][-3000:]
        assert not any("database is locked" in out for out in outputs)

        trials = optuna.load_study(study_name="shared:slow-heads", storage=storage).get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(complete) == TRIALS and len({t.number for t in complete}) == TRIALS
        assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}  # PRUNED: a surplus one given back
        assert len({t.user_attrs["worker"] for t in complete}) >= 2  # the workers shared the trials

        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name("headsearch/shared")
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        assert not [r for r in runs if r.info.status == "RUNNING"]
        finished = {r.info.run_name for r in runs if r.info.status == "FINISHED" and r.info.run_name.startswith("slow-heads-")}
        assert finished == {f"slow-heads-{t.number}" for t in complete}  # one MLflow run per trial, none twice

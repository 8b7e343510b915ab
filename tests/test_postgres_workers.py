"""Many workers on a real PostgreSQL storage with a real MLflow tracking server backed by PostgreSQL (both started
on loopback in a temporary folder, ``tests/local_services.py``): no ``database is locked``, no trial lost or run
twice, no run left RUNNING, and early stopping decided against the rung records of every worker."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from local_services import create_database, missing_postgres, mlflow_server, postgres_server
from optuna.trial import TrialState
from tiny_study import PLUGINS, write_study

from headsearch.search.early_stopping import Rungs
from headsearch.search.liveness import WORKER_ATTR
from headsearch.search.rungs import EARLY_STOP_ATTR, RUNG_PREFIX

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing_postgres() is not None, reason=str(missing_postgres()))]

WORKERS, TRIALS, PROBES = 4, 12, 16


def test_four_workers_on_postgresql_and_an_mlflow_server(tmp_path):
    from mlflow.tracking import MlflowClient

    with postgres_server() as storage, \
            mlflow_server(create_database(storage, "mlflow"), tmp_path / "mlflow") as (tracking_uri, _):
        strategies = [{"name": "slow-heads", "n_trials": TRIALS}, {"name": "progress-probe", "n_trials": PROBES}]
        study = write_study(tmp_path, strategies, name="shared", sampler="random", storage=storage,
                            tracking_uri=tracking_uri)
        env = {**os.environ, "PYTHONPATH": str(PLUGINS), "SLOW_S": "0.5", "PROBE_EPOCH_S": "0.2"}
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
        _check_shared_rungs(optuna.load_study(study_name="shared:progress-probe", storage=storage).get_trials(deepcopy=False))


def _check_shared_rungs(trials: list) -> None:
    """The progress-probe trials report ``quality`` after each of 4 epochs (rungs at epochs 1 and 4, ``mo_asha``,
    eta 4). Every trial that counts recorded its rungs, some were stopped, and at least one stopped trial would have
    gone on against the records of its own worker's earlier trials alone (all written before its decision): it was
    stopped by records other workers wrote."""
    counted = [t for t in trials if t.state == TrialState.COMPLETE or EARLY_STOP_ATTR in t.user_attrs]
    assert len(counted) == PROBES and all(f"{RUNG_PREFIX}1" in t.user_attrs for t in counted)
    stopped = [t for t in counted if t.state == TrialState.PRUNED]
    assert stopped and len({t.user_attrs[WORKER_ATTR] for t in counted}) >= 2

    def own_earlier(t, rung):
        return [tuple(o.user_attrs[f"{RUNG_PREFIX}{rung}"]) for o in counted if o.number < t.number
                and o.user_attrs[WORKER_ATTR] == t.user_attrs[WORKER_ATTR] and f"{RUNG_PREFIX}{rung}" in o.user_attrs]

    by_others = [t.number for t in stopped if Rungs().promote(
        tuple(t.user_attrs[f"{RUNG_PREFIX}{t.user_attrs[EARLY_STOP_ATTR]['rung']}"]),
        own_earlier(t, t.user_attrs[EARLY_STOP_ATTR]["rung"]))]
    assert by_others, [(t.number, t.user_attrs[WORKER_ATTR], t.user_attrs[EARLY_STOP_ATTR]) for t in stopped]

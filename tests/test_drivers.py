"""The driver contract: drivers by name, the job a driver gets, and the picklable plan a Ray worker builds its
runner from (once per process)."""

import contextlib
import pickle

import pytest
from tiny_study import write_study

from headsearch.errors import HeadsearchError
from headsearch.search.drivers import DRIVERS, driver_for
from headsearch.search.job import StrategyJob
from headsearch.search.trial import TrialRunner
from headsearch.study import WORKER_RUNNERS, StudyRun, WorkerPlan, finish, prepare, run_strategy
from headsearch.study_config import load_study


def test_drivers_by_name():
    assert driver_for("optuna").name == "optuna"
    assert {"optuna", "ray"} == set(DRIVERS)
    with pytest.raises(HeadsearchError, match="--driver 'dask' is not known"):
        driver_for("dask")


class Recording:
    """A driver that runs the job's trials in this process, as the Optuna driver does, and keeps the job."""

    name = "recording"

    def __init__(self):
        self.jobs: list[StrategyJob] = []

    def session(self):
        return contextlib.nullcontext()

    def run(self, job: StrategyJob) -> int:
        self.jobs.append(job)
        return driver_for("optuna").run(job)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> StudyRun:
    path = write_study(tmp_path_factory.mktemp("drivers"), [{"name": "random", "n_trials": 2}])
    return prepare(load_study(path), n_trials=None, resume=False, progress=False, echo=lambda *_: None,
                   driver="recording", early_stopping=True)


def test_a_study_runs_through_any_driver_that_keeps_the_contract(prepared):
    driver = Recording()
    with prepared.tracker.run(prepared.config.name, tags=prepared.tags) as parent:
        ran = run_strategy(prepared, prepared.strategies[0], driver, parent, n_trials=None, echo=lambda *_: None)
    job = driver.jobs[0]
    assert ran == 2 and len(job.study.trials) == 2 and job.n_trials == 2
    assert job.objectives == tuple(prepared.config.objectives) and job.hardware == prepared.hardware
    assert finish(prepared) == prepared.config.out_dir


def test_the_remote_runner_is_picklable_and_built_once_per_process(prepared):
    plan = WorkerPlan(prepared.config, "random", prepared.tracker.uri, "no-run", (("strategy", "random"),))
    copy = pickle.loads(pickle.dumps(plan))
    runner = copy()
    assert isinstance(runner, TrialRunner) and runner.strategy.name == "random"
    assert plan() is runner  # the same process: built once
    assert WORKER_RUNNERS.runner(WorkerPlan(prepared.config, "random", prepared.tracker.uri, "other", ())) is not runner

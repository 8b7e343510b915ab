"""The driver contract: drivers by name, the job a driver gets, the picklable plan a Ray worker builds its
runner from (once per process), and what Ray Tune pickles of the Ray driver."""

import contextlib
import pickle
from dataclasses import replace
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState
from tiny_study import write_study

from headsearch.core import DIRECTIONS
from headsearch.errors import HeadsearchError
from headsearch.search.drivers import DRIVERS, driver_for
from headsearch.search.job import StrategyJob
from headsearch.search.samplers import SAMPLERS
from headsearch.search.storage import optuna_storage
from headsearch.search.trial import TrialRunner
from headsearch.study import WORKER_RUNNERS, StudyRun, TrialLog, WorkerPlan, experiment_name, finish, prepare, run_strategy
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


def _log(prepared, run_id: str) -> TrialLog:
    return TrialLog(prepared.tracker.uri, experiment_name(prepared.config), run_id, (("strategy", "random"),))


def test_the_remote_runner_is_picklable_and_built_once_per_process(prepared):
    plan = WorkerPlan(prepared.config, "random", _log(prepared, "no-run"))
    copy = pickle.loads(pickle.dumps(plan))
    runner = copy()
    assert isinstance(runner, TrialRunner) and runner.strategy.name == "random"
    assert plan() is runner  # the same process: built once
    assert WORKER_RUNNERS.runner(WorkerPlan(prepared.config, "random", _log(prepared, "other"))) is not runner


class Capturing(Recording):
    """Keeps the job and runs none of its trials."""

    def run(self, job: StrategyJob) -> int:
        self.jobs.append(job)
        return 0


@pytest.fixture(scope="module")
def captured_job(prepared) -> StrategyJob:
    driver = Capturing()
    with prepared.tracker.run(prepared.config.name, tags=prepared.tags) as parent:
        run_strategy(prepared, prepared.strategies[0], driver, parent, n_trials=None, echo=lambda *_: None)
    return driver.jobs[0]


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_what_ray_tune_pickles_holds_no_lock_client_storage_or_bar(captured_job, sampler, tmp_path):
    """``tune.Tuner`` pickles its trainable's parameters, searcher, scheduler and callbacks (with its state, at
    experiment checkpoints, into the object store): with every sampler, before and after use (a study and
    sampler opened, a bar drawn, a trial logged to MLflow), and a copy works where it lands. Optuna 5.1's
    NSGA-II sampler holds a lock, so a searcher that pickled its sampler broke the default study."""
    cloudpickle = pytest.importorskip("ray.cloudpickle")
    from headsearch.search.ray_driver import STATUS, TRIAL_NUMBER, tuner_parts

    job = captured_job
    study = optuna.create_study(study_name=f"pickled-{sampler}", storage=optuna_storage(job.storage),
                                directions=[DIRECTIONS[o] for o in job.objectives])
    parts = tuner_parts(replace(job, study=study, sampler=sampler, progress=True), 3)
    pieces = (parts.trainable, parts.searcher, parts.scheduler, parts.progress)
    for piece in pieces:
        cloudpickle.dumps(piece)
    config = parts.searcher.suggest("ray-0")  # the study and its sampler open in this process
    assert config[TRIAL_NUMBER] == 0 and set(config) - {TRIAL_NUMBER} == set(study.trials[0].params)
    report = {STATUS: "running", "rung": 1, "step": 1, "accuracy": 0.5, "cost": 0.5, TRIAL_NUMBER: 0}
    parts.scheduler.on_trial_result(None, SimpleNamespace(config=config), report)  # its storage open
    failed = SimpleNamespace(config=config, last_result={}, error_file="worker.log")
    parts.progress.on_trial_error(0, [], failed)  # a bar drawn, an MLflow client made, the trial logged
    copies = [cloudpickle.loads(cloudpickle.dumps(piece)) for piece in pieces]
    searcher = copies[1]
    again = searcher.suggest("ray-1")  # reopened from the storage where it landed
    assert again[TRIAL_NUMBER] == 1 and searcher.trial_numbers == {"ray-0": 0, "ray-1": 1}
    values = {o: 0.5 for o in job.objectives}
    searcher.on_trial_complete("ray-1", {**values, STATUS: "complete"})
    searcher.on_trial_complete("ray-0", {**values, **report})  # stopped at its last (intermediate) report
    assert [t.state for t in study.get_trials(deepcopy=False)] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert study.trials[0].user_attrs["stopped_early"]["rung"] == 1
    checkpoint = tmp_path / "searcher.pkl"
    searcher.save(str(checkpoint))  # Ray Tune's experiment checkpoint of the searcher
    restored = tuner_parts(replace(job, study=study, sampler=sampler), 3).searcher
    restored.restore(str(checkpoint))
    assert restored.trial_numbers == {} and restored.suggest("ray-2")[TRIAL_NUMBER] == 2
    restored.on_trial_complete("ray-2", {**values, STATUS: "stopped"})  # its worker stopped it at a row rung
    assert study.trials[2].state == TrialState.PRUNED


def test_a_ray_node_that_cannot_see_the_run_folder_fails_its_trial_in_one_line_naming_the_path(tmp_path):
    """On a cluster every node must see the driver's folders: a trial on a node that does not fails at once with the
    path, and the driver records that line (the trial's own exception, unwrapped from Ray's) as the reason."""
    from ray.exceptions import ActorDiedError, RayTaskError

    from headsearch.search.ray_driver import _infrastructure_death, _one_line, _trainable

    with pytest.raises(HeadsearchError, match="/no/such/folder: the driver's working folder is not found on Ray node"):
        _trainable({}, runner=None, storage="", study_name="", objectives=[], cwd="/no/such/folder", rungs=None)
    config = load_study(write_study(tmp_path, [{"name": "random", "n_trials": 1}]))  # its run folder does not exist
    with pytest.raises(HeadsearchError, match=f"{tmp_path / 'run' / 'model'}: not found on Ray node"):
        WorkerPlan(config, "random", None)()
    wrapped = RayTaskError("_trainable", "Traceback ...", HeadsearchError("/x/run/model: not found on Ray node a\nmore"))
    assert _one_line(wrapped) == "HeadsearchError: /x/run/model: not found on Ray node a"
    assert _infrastructure_death(wrapped) is None  # the trial's own failure: counted, not rerun
    assert _infrastructure_death(ActorDiedError()) == "ActorDiedError"  # its worker died: rerun
    assert _infrastructure_death(None) is None and _one_line(None) == ""

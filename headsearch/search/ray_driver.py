"""Ray Tune driver: the Optuna driver's trials, run as Ray Tune trials on a local Ray instance or a cluster.

``StudySearch`` asks the study's own Optuna study (same storage, sampler and seed) for each trial's
parameters, multi-objective (metric and mode lists on the searcher). Each trial runs in a Ray
worker that builds its ``TrialRunner`` once per process (``job.remote_runner``: data, the dense model from the run
folder, the prepared strategy, MLflow logging), records the same user attributes as the Optuna driver and
reports the objectives. Strategies that train report after each epoch (``StudyContext.progress_hook``); at
rungs the worker records its (accuracy, cost) in the storage and reports them to Ray Tune, whose scheduler
(``RungScheduler``) decides by the same early-stopping rule as the Optuna driver against the rung records
in the storage, and the searcher records stopped trials as PRUNED. Row rungs (a candidate scored on a share
of the split's rows) come seconds apart, so the worker decides those itself against the same records. The
front is read from the storage afterwards, never from Ray's ``ResultGrid`` (which knows one metric). What Ray
Tune pickles (``TunerParts``) holds no lock, client, storage engine or progress bar: those are built where they run.

On a cluster (``address``) the run folder, the data and the storage must be reachable from every node at
the same path or URI: a shared file system and an RDB storage such as PostgreSQL.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import optuna
import ray
from optuna.trial import TrialState
from ray import cloudpickle as pickle
from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
from tqdm.auto import tqdm

from headsearch._process import worker_name
from headsearch.core import DIRECTIONS
from headsearch.errors import HeadsearchError
from headsearch.search.early_stopping import Rungs
from headsearch.search.job import StrategyJob
from headsearch.search.liveness import WORKER_ATTR, ask, fail_dead_trials, heartbeat, rerun_killed
from headsearch.search.optuna_driver import check_hardware, counted_trials
from headsearch.search.rungs import EARLY_STOP_ATTR, TrialRungs, rung_points
from headsearch.search.samplers import study_sampler
from headsearch.search.storage import optuna_storage
from headsearch.search.trial import HARDWARE_ATTR, TrialRecord, TrialRunner
from headsearch.searchspace import SearchSpace

TRIAL_NUMBER = "optuna_trial"  # the Optuna trial's number, passed to the Ray trial beside its parameters
STATUS = "status"  # every report says whether it is a trial's outcome: "complete", "stopped", "failed" or "running"


class RayDriver:
    """Ray Tune trials on the Ray instance ``session`` holds: a local one sized to this machine, or the cluster
    at ``address``; ``max_concurrent`` trials at once (default: as many as its CPUs allow)."""

    name = "ray"

    def __init__(self, *, address: str | None = None, max_concurrent: int | None = None):
        self.address, self.max_concurrent = address, max_concurrent

    def session(self) -> AbstractContextManager:
        return ray_instance(self.address)

    def run(self, job: StrategyJob) -> int:
        """Run the job's missing trials as Ray Tune trials; returns how many ended. Each Ray worker builds its
        runner with ``job.remote_runner``; ``job.on_ended`` logs here each trial that ended before its worker
        could record it (stopped early, or its worker failed); the worker's runner records the others."""
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0, Ray Tune prints nothing
        check_hardware(job.study, dict(job.hardware))
        ended = 0
        for _ in range(MAX_ROUNDS):  # another round only for trials whose Ray worker or node died (rerun)
            fail_dead_trials(job.study)  # trials whose process is gone (an earlier run's; silent for GRACE_S)
            remaining = job.n_trials - len(counted_trials(job.study))
            if remaining <= 0:
                break
            progress = self._round(job, remaining)
            ended += progress.ended
            if not progress.killed:
                break
        return ended

    def _round(self, job: StrategyJob, remaining: int) -> Progress:
        """One Ray Tune run of ``remaining`` trials; returns its progress callback."""
        resources = trial_resources(job.hardware)
        max_concurrent = self.max_concurrent or max(1, int(ray.available_resources().get("CPU", 1) // resources["cpu"]))
        parts = tuner_parts(job, remaining)
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trainable, **parts.trainable), resources),
            tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(parts.searcher, max_concurrent=max_concurrent),
                                        scheduler=parts.scheduler, num_samples=remaining, reuse_actors=True),
            run_config=tune.RunConfig(name=f"{job.study.study_name.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}",
                                      storage_path=str(job.experiment_dir.resolve()), verbose=0,
                                      callbacks=[parts.progress]),
        )
        tuner.fit()
        parts.progress.close()
        return parts.progress


@dataclass(frozen=True)
class TunerParts:
    """What ``tune.Tuner`` pickles (with the tuner's state, at experiment checkpoints, and into Ray's object
    store): the trainable's parameters, the searcher, the scheduler and the progress callback. Each holds
    names, numbers and picklable plans only; Optuna studies, samplers, storages, MLflow clients and progress
    bars are built in the process that uses them, on first use, and never pickled."""

    trainable: dict[str, Any]
    searcher: StudySearch
    scheduler: TrialScheduler
    progress: Progress


def tuner_parts(job: StrategyJob, remaining: int) -> TunerParts:
    """The parts of the tuner that runs ``remaining`` more trials of ``job``."""
    study_name, objectives = job.study.study_name, list(job.objectives)
    searcher = StudySearch(storage=job.storage, study_name=study_name, sampler=job.sampler, seed=job.seed,
                           objectives=objectives, space=job.space, num_layers=job.num_layers, num_heads=job.num_heads,
                           hardware=dict(job.hardware))
    scheduler = FIFOScheduler() if job.rungs.rule == "none" else RungScheduler(job.rungs, job.storage, study_name)
    trainable = {"runner": job.remote_runner, "storage": job.storage, "study_name": study_name,
                 "objectives": objectives, "cwd": os.getcwd(), "rungs": job.rungs}
    progress = Progress(remaining, desc=f"{study_name.rpartition(':')[2]} (ray)", disable=not job.progress,
                        on_ended=job.on_ended, rule=job.rungs.rule, storage=job.storage, study_name=study_name)
    return TunerParts(trainable, searcher, scheduler, progress)


def trial_resources(hardware: Mapping[str, Any]) -> dict[str, float]:
    """Ray resources of one trial: the profile's threads, and a GPU when it measures on CUDA."""
    resources = {"cpu": float(hardware["threads"])}
    if str(hardware["device"]).startswith("cuda"):
        resources["gpu"] = 1.0
    return resources


@contextmanager
def ray_instance(address: str | None) -> Iterator[None]:
    """Join the Ray cluster at ``address`` (``auto``: the one ``ray start`` last started on this machine) or at
    ``RAY_ADDRESS``; without either, start a new local Ray instance sized to this machine (shut down on leaving),
    never a ``ray start`` cluster that happens to run here (plain ``ray.init()`` would join it). A Ray instance
    this process already started is used as it is."""
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    else:
        ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()


def _trainable(config: dict, *, runner: Callable[[], TrialRunner], storage: str, study_name: str,
               objectives: list[str], cwd: str, rungs: Rungs) -> None:
    """One Ray Tune trial: run the Optuna trial named in ``config`` and report its objectives."""
    if not os.path.isdir(cwd):
        raise HeadsearchError(f"{cwd}: the driver's working folder is not found on Ray node {socket.gethostname()}; "
                              "every node of a cluster must see it (and the run folder) at the same path.")
    os.chdir(cwd)  # Ray starts trials in their own folder; the study's relative paths are the driver's
    params = dict(config)
    number = int(params.pop(TRIAL_NUMBER))
    trial_runner = runner()
    set_attr = _trial_attr_setter(storage, study_name, number)
    set_attr(WORKER_ATTR, worker_name())
    # Ray Tune wants every searcher metric in every report; the trial's number lets the searcher find it in the storage
    unknown = {**{o: math.nan for o in objectives}, TRIAL_NUMBER: number}

    def report(at_rung: dict[str, Any]) -> None:  # the scheduler's stop ends the trial in here
        tune.report({**unknown, **at_rung, STATUS: "running"})

    storage_ = optuna_storage(storage)
    study_id = storage_.get_study_id_from_name(study_name)
    trial_rungs = TrialRungs(rungs, number, set_attr, trial_runner.price, notify=report,
                             trials=lambda: storage_.get_all_trials(study_id, deepcopy=False))
    with heartbeat(storage_, study_name, number):
        outcome = trial_runner.run(number, lambda: params, trial_rungs)
    outcome.write(set_attr)
    if outcome.record.pruned:  # stopped here at a row rung (epoch rungs are the scheduler's): PRUNED
        tune.report({**unknown, "accuracy": math.nan, STATUS: "stopped"})
    elif outcome.values is None:
        tune.report({**unknown, "accuracy": math.nan, STATUS: "failed"})
    else:
        tune.report({**unknown, **dict(zip(objectives, outcome.values, strict=True)),
                     "accuracy": outcome.record.objectives.accuracy, STATUS: "complete"})


def _trial_attr_setter(storage: str, study_name: str, number: int) -> Callable[[str, Any], None]:
    """``set(key, value)`` of trial ``number``'s user attributes, through the study's storage (how a Ray worker
    and the searcher write to an Optuna trial they do not hold)."""
    storage_ = optuna_storage(storage)
    trial_id = storage_.get_trial_id_from_study_id_trial_number(storage_.get_study_id_from_name(study_name), number)
    return functools.partial(storage_.set_trial_user_attr, trial_id)


class RungScheduler(FIFOScheduler):
    """Ray Tune's side of early stopping: each report a trial makes at a rung is compared, by the study's
    rule, with what the other trials recorded at that rung in the storage (its own record was written by its
    worker before the report), and the trial is stopped when it is outranked."""

    def __init__(self, rungs: Rungs, storage: str, study_name: str):
        super().__init__()
        self.rungs, self.storage, self.study_name = rungs, storage, study_name
        self._storage: Any = None  # opened on the first report; not pickled with the scheduler

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_storage": None}

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get(STATUS) != "running" or "rung" not in result:
            return TrialScheduler.CONTINUE
        if self._storage is None:
            self._storage = optuna_storage(self.storage)
        trials = self._storage.get_all_trials(self._storage.get_study_id_from_name(self.study_name), deepcopy=False)
        others = rung_points(trials, int(result["rung"]), exclude=int(trial.config[TRIAL_NUMBER]))
        go_on = self.rungs.promote((float(result["accuracy"]), float(result["cost"])), others)
        return TrialScheduler.CONTINUE if go_on else TrialScheduler.STOP


class StudySearch(Searcher):
    """Ray Tune's searcher over the job's Optuna study: ``suggest`` asks the study for a trial and samples the
    search space into it (in this, the driver process); ``on_trial_complete`` tells the study the outcome
    from the trial's last report. A trial stopped at an intermediate report (its objectives unknown) is
    PRUNED with that report as ``stopped_early``; a failed one FAIL.

    An adapter of Optuna's ask/tell, as Ray's ``OptunaSearch`` is, but picklable by construction: it holds
    the storage URI, the study and sampler names and the seed; the study (with its sampler, whose state
    need not pickle: NSGA-II's holds a lock since optuna 5.1) is opened on first use in the process that
    uses it. History lives in the storage, so a searcher restored from a checkpoint samples on from it."""

    def __init__(self, *, storage: str, study_name: str, sampler: str, seed: int, objectives: list[str],
                 space: SearchSpace, num_layers: int, num_heads: int, hardware: dict[str, Any]):
        super().__init__(metric=list(objectives),
                         mode=["max" if DIRECTIONS[o] == "maximize" else "min" for o in objectives])
        self.storage, self.study_name, self.sampler, self.seed = storage, study_name, sampler, seed
        self.objectives, self.space, self.hardware = list(objectives), space, hardware
        self.num_layers, self.num_heads = num_layers, num_heads
        self.trial_numbers: dict[str, int] = {}  # Ray trial id -> Optuna trial number
        self._study: optuna.Study | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_study": None}

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = optuna.load_study(study_name=self.study_name, storage=optuna_storage(self.storage),
                                            sampler=study_sampler(self.sampler, self.seed))
        return self._study

    def suggest(self, trial_id: str) -> dict[str, Any]:
        trial = ask(self.study)
        self.trial_numbers[trial_id] = trial.number
        params = self.space.suggest(trial, self.num_layers, self.num_heads)
        trial.set_user_attr(WORKER_ATTR, worker_name())  # this process, until a Ray worker takes the trial
        trial.set_user_attr(HARDWARE_ATTR, self.hardware)
        return {**params, TRIAL_NUMBER: trial.number}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        number = self.trial_numbers.pop(trial_id, None)
        if number is None:  # suggested before a restore from a checkpoint: nothing here to tell the study
            return
        status = (result or {}).get(STATUS)
        if status == "complete" and not error:
            self.study.tell(number, [float(result[o]) for o in self.objectives], skip_if_finished=True)
            return
        if status == "running" and not error:  # stopped by the scheduler at an epoch rung
            _trial_attr_setter(self.storage, self.study_name, number)(EARLY_STOP_ATTR, _stopped_at(result))
            self.study.tell(number, state=TrialState.PRUNED, skip_if_finished=True)
            return
        if status == "stopped" and not error:  # stopped by its worker at a row rung, which recorded why
            self.study.tell(number, state=TrialState.PRUNED, skip_if_finished=True)
            return
        self.study.tell(number, state=TrialState.FAIL, skip_if_finished=True)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


MAX_ROUNDS = 3  # Ray Tune runs per strategy: the first, and reruns of trials whose worker or node died


def _trial_error(trial: Any) -> BaseException | None:
    """The exception ``trial`` ended with, from Ray Tune's local error pickle (written before callbacks run; synced to
    the storage path later); None when there is none or it cannot be read."""
    try:
        with open(trial.pickled_error_file, "rb") as f:
            return pickle.load(f)
    except Exception:  # no error file, or an unreadable one
        return None


def _infrastructure_death(error: BaseException | None) -> str | None:
    """Why the trial ended, when its Ray worker process or node died under it (not an exception of the trial's own
    code, which Ray wraps as ``RayTaskError``); None otherwise."""
    from ray.exceptions import NodeDiedError, RayActorError, RayTaskError, WorkerCrashedError

    if isinstance(error, RayTaskError) or not isinstance(error, RayActorError | NodeDiedError | WorkerCrashedError):
        return None
    return type(error).__name__


def _one_line(error: BaseException | None) -> str:
    """The trial's own exception as one line (``Type: first line``), unwrapped from Ray's ``RayTaskError``."""
    from ray.exceptions import RayTaskError

    cause = error.cause if isinstance(error, RayTaskError) and error.cause is not None else error
    if cause is None:
        return ""
    return f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]}"


def _stopped_at(result: Mapping[str, Any]) -> dict[str, float]:
    return {"step": int(result["step"]), "rung": int(result["rung"]), "accuracy": float(result["accuracy"]),
            "cost": float(result["cost"])}


class Progress(tune.Callback):
    """A progress bar of ended trials (Ray Tune's own tables are off), and a ``TrialRecord`` for each trial
    that ended without running to its end in the worker (stopped by the scheduler, or its worker failed),
    which the worker could not log itself (``on_ended``: a picklable logger). The bar is made on the first
    trial that ends and is not pickled."""

    def __init__(self, total: int, *, desc: str, disable: bool, on_ended: Callable[[TrialRecord], None] | None,
                 rule: str, storage: str, study_name: str):
        self.total, self.desc, self.disable, self.on_ended, self.rule = total, desc, disable, on_ended, rule
        self.storage, self.study_name = storage, study_name
        self.ended = self.killed = 0
        self._bar: tqdm | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_bar": None}

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = _trial_error(trial)
        death = _infrastructure_death(error)
        if death is None:
            self._end(trial, f"Ray trial error: {_one_line(error) or trial.error_file or 'see the Ray logs'}")
            return
        # not the candidate's fault: the trial is failed and its parameters run again (it does not count)
        reason = f"killed: its Ray worker died ({death})"
        params = {k: v for k, v in trial.config.items() if k != TRIAL_NUMBER}
        study = optuna.load_study(study_name=self.study_name, storage=optuna_storage(self.storage))
        rerun_killed(study, int(trial.config[TRIAL_NUMBER]), params, reason)
        self.killed += 1
        self._end(trial, reason)

    def _end(self, trial: Any, error: str | None) -> None:
        self.ended += 1
        if self._bar is None:
            self._bar = tqdm(total=self.total, desc=self.desc, unit="trial", disable=self.disable, leave=False)
        self._bar.update(1)
        last = trial.last_result or {}
        stopped = error is None and last.get(STATUS) == "running"
        if self.on_ended is not None and (stopped or error):
            params = {k: v for k, v in trial.config.items() if k != TRIAL_NUMBER}
            info = {f"stopped_at_{k}": v for k, v in _stopped_at(last).items()} if stopped else {}
            self.on_ended(TrialRecord(int(trial.config[TRIAL_NUMBER]), params, None, None,
                                      f"stopped early ({self.rule})" if stopped else "", error, info, pruned=stopped))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

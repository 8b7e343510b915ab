"""Ray Tune driver: the Optuna driver's trials, run as Ray Tune trials on a local Ray instance or a cluster.

Ray Tune's ``OptunaSearch`` asks the study's own Optuna study (same storage, sampler and seed) for each
trial's parameters, multi-objective (metric and mode lists on the searcher). Each trial runs in a Ray
worker that builds its ``TrialRunner`` once per process (``job.remote_runner``: data, the dense model from the run
folder, the prepared strategy, MLflow logging), records the same user attributes as the Optuna driver and
reports the objectives. Strategies that train report after each epoch (``StudyContext.progress_hook``); at
rungs the worker records its (accuracy, cost) in the storage and reports them to Ray Tune, whose scheduler
(``RungScheduler``) decides by the same early-stopping rule as the Optuna driver against the rung records
in the storage, and the searcher records stopped trials as PRUNED. The front is read from the storage
afterwards, never from Ray's ``ResultGrid`` (which knows one metric).

On a cluster (``address``) the run folder, the data and the storage must be reachable from every node at
the same path or URI: a shared file system and an RDB storage such as PostgreSQL.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch
from tqdm.auto import tqdm

from headsearch._process import worker_name
from headsearch.core import DIRECTIONS
from headsearch.search.early_stopping import Rungs
from headsearch.search.job import StrategyJob
from headsearch.search.optuna_driver import SAMPLERS, check_hardware, counted_trials, fail_dead_trials
from headsearch.search.rungs import EARLY_STOP_ATTR, TrialRungs, rung_points
from headsearch.search.storage import optuna_storage
from headsearch.search.trial import HARDWARE_ATTR, WORKER_ATTR, TrialRecord, TrialRunner
from headsearch.searchspace import SearchSpace

TRIAL_NUMBER = "optuna_trial"  # the Optuna trial's number, passed to the Ray trial beside its parameters
STATUS = "status"  # every report says whether it is a trial's outcome: "complete", "failed" or "running"


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
        study, hardware, rungs = job.study, dict(job.hardware), job.rungs
        check_hardware(study, hardware)
        fail_dead_trials(study)  # trials of an earlier run whose process is gone
        remaining = job.n_trials - len(counted_trials(study))
        if remaining <= 0:
            return 0
        resources = trial_resources(hardware)
        max_concurrent = self.max_concurrent or max(1, int(ray.available_resources().get("CPU", 1) // resources["cpu"]))
        objectives = list(job.objectives)
        searcher = _FrontSearch(job.storage, space=_Suggest(job.space, job.num_layers, job.num_heads, hardware),
                                metric=objectives, mode=["max" if DIRECTIONS[o] == "maximize" else "min" for o in objectives],
                                sampler=SAMPLERS[job.sampler](job.seed), study_name=study.study_name,
                                storage=optuna_storage(job.storage))
        scheduler = FIFOScheduler() if rungs.rule == "none" else RungScheduler(rungs, job.storage, study.study_name)
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, runner=job.remote_runner, storage=job.storage, study_name=study.study_name,
                                 objectives=objectives, cwd=os.getcwd(), rungs=rungs),
            resources)
        bar = _Progress(remaining, desc=f"{study.study_name.rpartition(':')[2]} (ray)", disable=not job.progress,
                        on_ended=job.on_ended, rule=rungs.rule)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=max_concurrent),
                                        scheduler=scheduler, num_samples=remaining, reuse_actors=True),
            run_config=tune.RunConfig(name=f"{study.study_name.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}",
                                      storage_path=str(job.experiment_dir.resolve()), verbose=0, callbacks=[bar]),
        )
        tuner.fit()
        bar.close()
        return bar.ended


def trial_resources(hardware: Mapping[str, Any]) -> dict[str, float]:
    """Ray resources of one trial: the profile's threads, and a GPU when it measures on CUDA."""
    resources = {"cpu": float(hardware["threads"])}
    if str(hardware["device"]).startswith("cuda"):
        resources["gpu"] = 1.0
    return resources


@contextmanager
def ray_instance(address: str | None) -> Iterator[None]:
    """Join the Ray cluster at ``address``, or start a local Ray instance sized to this machine (shut down
    on leaving); a Ray instance this process already started is used as it is."""
    if ray.is_initialized():
        yield
        return
    if address:
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    else:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class _Suggest:
    """The searcher's define-by-run space: samples a trial's parameters in the driver process (a class, not
    a closure: Ray Tune pickles its searcher with each experiment checkpoint)."""

    space: SearchSpace
    num_layers: int
    num_heads: int
    hardware: dict

    def __call__(self, trial: optuna.Trial) -> dict[str, int]:
        self.space.suggest(trial, self.num_layers, self.num_heads)
        trial.set_user_attr(WORKER_ATTR, worker_name())  # this process, until a Ray worker takes the trial
        trial.set_user_attr(HARDWARE_ATTR, self.hardware)
        return {TRIAL_NUMBER: trial.number}


def _trainable(config: dict, *, runner: Callable[[], TrialRunner], storage: str, study_name: str,
               objectives: list[str], cwd: str, rungs: Rungs) -> None:
    """One Ray Tune trial: run the Optuna trial named in ``config`` and report its objectives."""
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

    trial_runner.context.progress_hook = TrialRungs(rungs, number, set_attr, trial_runner.price, notify=report).hook
    try:
        outcome = trial_runner.run(number, lambda: params)
    finally:
        trial_runner.context.progress_hook = None
    outcome.write(set_attr)
    if outcome.values is None:
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


class _FrontSearch(OptunaSearch):
    """``OptunaSearch`` that tells Optuna a trial's objectives only from its final report: a trial stopped at
    an intermediate report (its objectives unknown) is PRUNED, with that report as ``stopped_early`` (written
    through the study's storage, found by the trial number every report carries); a failed one FAIL (Ray's own
    would tell Optuna the NaN placeholders, which it refuses, leaving the trial RUNNING)."""

    def __init__(self, study_storage: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.study_storage, self.front_study = study_storage, kwargs["study_name"]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        status = (result or {}).get(STATUS)
        if status == "running" and not error:
            set_attr = _trial_attr_setter(self.study_storage, self.front_study, int(result[TRIAL_NUMBER]))
            set_attr(EARLY_STOP_ATTR, _stopped_at(result))
        if status != "complete":
            result, error = None, error or status == "failed"
        super().on_trial_complete(trial_id, result, error)


def _stopped_at(result: Mapping[str, Any]) -> dict[str, float]:
    return {"step": int(result["step"]), "rung": int(result["rung"]), "accuracy": float(result["accuracy"]),
            "cost": float(result["cost"])}


class _Progress(tune.Callback):
    """A progress bar of ended trials (Ray Tune's own tables are off), and a ``TrialRecord`` for each trial
    that ended without running to its end in the worker (stopped by the scheduler, or its worker failed),
    which the worker could not log itself."""

    def __init__(self, total: int, *, desc: str, disable: bool, on_ended: Callable[[TrialRecord], None] | None,
                 rule: str):
        self.ended, self.on_ended, self.rule = 0, on_ended, rule
        self._bar = tqdm(total=total, desc=desc, unit="trial", disable=disable, leave=False)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, f"Ray trial error: {trial.error_file or 'see the Ray logs'}")

    def _end(self, trial: Any, error: str | None) -> None:
        self.ended += 1
        self._bar.update(1)
        last = trial.last_result or {}
        stopped = error is None and last.get(STATUS) == "running"
        if self.on_ended is not None and (stopped or error):
            params = {k: v for k, v in trial.config.items() if k != TRIAL_NUMBER}
            info = {f"stopped_at_{k}": v for k, v in _stopped_at(last).items()} if stopped else {}
            self.on_ended(TrialRecord(int(trial.config[TRIAL_NUMBER]), params, None, None,
                                      f"stopped early ({self.rule})" if stopped else "", error, info, pruned=stopped))

    def close(self) -> None:
        self._bar.close()

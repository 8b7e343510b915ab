"""Optuna driver: one multi-objective Optuna study per (study, strategy) in one storage, resumable.

Trials go through ``ask``/``tell``: the strategy proposes, the evaluator scores, Optuna records the
values and the trial's head configuration and objectives as user attributes. A trial that raises or
gives NaN is recorded as failed with its reason, and the study goes on. Several processes may run
trials of one study at once (``headsearch worker``): each counts the trials finished or running in
the storage before asking for another, gives back (as PRUNED) a trial beyond the count that a race
handed it, and fails trials whose process or host was lost (``headsearch.search.liveness``).

A killed trial (its process interrupted, or found dead) is failed with the reason, and its parameters are
enqueued to run again; it no longer counts towards ``n_trials``, so a study killed and resumed still ends with
``n_trials`` finished.

Trials that train report after each epoch, and every candidate after each rung of rows scored; at rungs the
early-stopping rule (``headsearch.search.early_stopping``, multi-objective successive halving by default)
compares them with the rung records every worker wrote in the storage (``headsearch.search.rungs``) and stops
the outranked ones: PRUNED with ``stopped_early``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from headsearch._process import worker_name
from headsearch.core import DIRECTIONS
from headsearch.errors import HeadsearchError
from headsearch.search.early_stopping import Rungs
from headsearch.search.job import StrategyJob
from headsearch.search.liveness import WORKER_ATTR, ask, fail_dead_trials, heartbeat, killed_trials, rerun_killed
from headsearch.search.rungs import EARLY_STOP_ATTR, TrialRungs
from headsearch.search.samplers import study_sampler
from headsearch.search.storage import optuna_storage
from headsearch.search.trial import HARDWARE_ATTR, TrialRunner, interrupted_reason
from headsearch.searchspace import SearchSpace


def optuna_study_name(study: str, strategy: str) -> str:
    return f"{study}:{strategy}"


NO_STOPPING = Rungs(rule="none")


def check_new_studies(storage: str, study: str, strategies: Sequence[str]) -> None:
    """Refuse to start ``study`` afresh where ``storage`` already holds one of its strategies' studies."""
    existing = {s.study_name for s in optuna.get_all_study_summaries(optuna_storage(storage))}
    for strategy in strategies:
        name = optuna_study_name(study, strategy)
        if name in existing:
            raise HeadsearchError(f"Optuna study {name!r} already exists in {storage}; pass --resume to continue it "
                                  "or --out to start elsewhere.")


def open_study(storage: str, study: str, strategy: str, objectives: Sequence[str], sampler: str, seed: int) -> optuna.Study:
    """The strategy's Optuna study in ``storage`` (a URI, ``headsearch.search.storage``), created or continued
    (``check_new_studies`` refuses a fresh start over an existing one, before anything runs)."""
    name = optuna_study_name(study, strategy)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=optuna_storage(storage), load_if_exists=True,
                                directions=[DIRECTIONS[o] for o in objectives], sampler=study_sampler(sampler, seed))
    with warnings.catch_warnings():  # experimental since 3.2, still so in 5.0; only labels optuna-dashboard's axes
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objectives))
    return study


def run_trials(study: optuna.Study, runner: TrialRunner, space: SearchSpace, *, n_trials: int, progress: bool = True,
               hardware: Mapping[str, Any] | None = None, rungs: Rungs = NO_STOPPING, storage: str | None = None) -> int:
    """Run trials until the study holds ``n_trials`` finished or running ones; returns how many ran here.

    ``hardware``: the profile the objectives are measured on, recorded with every trial; a study whose
    finished trials were measured on another profile is refused, so that one front never mixes hardware.
    ``rungs``: early stopping of trials that train, against the rung records in the study's storage (shared
    with every worker); a stopped trial is PRUNED and counts. ``storage``: the study's storage URI, where a running
    trial records its heartbeats (``liveness.heartbeat``)."""
    if hardware is not None:
        check_hardware(study, dict(hardware))
    context, beats = runner.context, optuna_storage(storage) if storage else None
    ran = 0
    with tqdm(total=n_trials, desc=runner.strategy.name, unit="trial", disable=not progress, leave=False) as bar:
        while True:
            for number, params, reason in fail_dead_trials(study):
                runner.killed(number, params, reason)
            taken = len(counted_trials(study))
            bar.n = min(taken, n_trials)
            bar.refresh()
            if taken >= n_trials:
                break
            trial = ask(study)
            if _surplus(study, trial.number, n_trials):  # another worker asked at the same moment and got the last one
                study.tell(trial, state=TrialState.PRUNED)
                continue
            trial.set_user_attr(WORKER_ATTR, worker_name())
            if hardware is not None:
                trial.set_user_attr(HARDWARE_ATTR, dict(hardware))
            trial_rungs = TrialRungs(rungs, trial.number, trial.set_user_attr, runner.price,
                                     trials=lambda: study.get_trials(deepcopy=False))
            try:
                with heartbeat(beats, study.study_name, trial.number):
                    outcome = runner.run(trial.number,
                                         lambda trial=trial: space.suggest(trial, context.num_layers, context.num_heads),
                                         trial_rungs)
            except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: fail it with the reason, run its parameters again later
                reason = interrupted_reason(stop)
                trial.set_user_attr("fail_reason", reason)
                study.tell(trial, state=TrialState.FAIL)
                rerun_killed(study, trial.number, trial.params, reason)
                raise
            try:
                outcome.write(trial.set_user_attr)
                if outcome.record.pruned:
                    study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
                elif outcome.values is None:
                    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                else:
                    study.tell(trial, outcome.values, skip_if_finished=True)
            except optuna.exceptions.UpdateFinishedTrialError:
                # another process failed it as lost while it ran (no heartbeat for GRACE_S) and reruns its parameters
                bar.write(f"trial {trial.number} was failed as lost while it ran ({killed_trials(study).get(trial.number)});"
                          " its result is dropped, its parameters run again")
            ran += 1
    return ran


def check_hardware(study: optuna.Study, hardware: dict) -> None:
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        other = t.user_attrs.get(HARDWARE_ATTR)
        if other is not None and other != hardware:
            changed = ", ".join(f"{k} {other.get(k)!r} -> {hardware.get(k)!r}" for k in sorted(set(other) | set(hardware))
                                if other.get(k) != hardware.get(k))
            raise HeadsearchError(f"{study.study_name}: its trials were measured on other hardware ({changed}); fronts "
                                  "never mix hardware: use --out (and a new storage) for a run on this profile.")


def _surplus(study: optuna.Study, number: int, n_trials: int) -> bool:
    """Whether trial ``number`` lies beyond the first ``n_trials`` trials that count (numbers are handed out
    atomically by the storage, so concurrent workers agree on which trials those are)."""
    return sum(1 for t in counted_trials(study) if t.number <= number) > n_trials


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count towards ``n_trials``: finished, failed, running or stopped early (not those
    given back as PRUNED), except killed ones, whose parameters run again."""
    killed = killed_trials(study)
    return [t for t in study.get_trials(deepcopy=False) if t.number not in killed and (
        t.state in (TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING)
        or (t.state == TrialState.PRUNED and EARLY_STOP_ATTR in t.user_attrs))]


class OptunaDriver:
    """Trials one after another in this process."""

    name = "optuna"

    def session(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def run(self, job: StrategyJob) -> int:
        return run_trials(job.study, job.local_runner(), job.space, n_trials=job.n_trials, progress=job.progress,
                          hardware=job.hardware, rungs=job.rungs, storage=job.storage)

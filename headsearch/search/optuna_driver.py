"""Optuna driver: one multi-objective Optuna study per (study, strategy) in one storage, resumable.

Trials go through ``ask``/``tell``: the strategy proposes, the evaluator scores, Optuna records the
values and the trial's head configuration and objectives as user attributes. A trial that raises or
gives NaN is recorded as failed with its reason, and the study goes on.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from headsearch.errors import HeadsearchError
from headsearch.heads import HeadConfig
from headsearch.models.text_classifier import TextClassifier
from headsearch.objectives import DIRECTIONS, Objectives
from headsearch.searchspace import SearchSpace
from headsearch.strategies.base import Candidate, Strategy, StudyContext

SAMPLERS = {
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed),
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}


@dataclass(frozen=True)
class TrialRecord:
    number: int
    params: dict
    objectives: Objectives | None
    head_config: HeadConfig | None
    description: str
    error: str | None
    info: dict = field(default_factory=dict)  # the Candidate's own figures (search-subset accuracy, ...)
    artifacts: dict = field(default_factory=dict)  # the Candidate's files (name -> text or bytes)


def optuna_study_name(study: str, strategy: str) -> str:
    return f"{study}:{strategy}"


def open_study(storage: str, study: str, strategy: str, objectives: Sequence[str], sampler: str, seed: int,
               *, resume: bool) -> optuna.Study:
    name = optuna_study_name(study, strategy)
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if name in existing and not resume:
        raise HeadsearchError(f"Optuna study {name!r} already exists in {storage}; pass --resume to continue it "
                              "or --out to start elsewhere.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                directions=[DIRECTIONS[o] for o in objectives], sampler=SAMPLERS[sampler](seed))
    with warnings.catch_warnings():  # experimental since 3.2, still so in 5.0; only labels optuna-dashboard's axes
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objectives))
    return study


def run_trials(study: optuna.Study, *, strategy: Strategy, space: SearchSpace, context: StudyContext,
               evaluate: Callable[[Candidate], Objectives], objectives: Sequence[str], n_trials: int,
               on_trial: Callable[[TrialRecord], None] | None = None,
               save_model: Callable[[int, TextClassifier], str] | None = None, progress: bool = True) -> int:
    """Run trials until the study holds ``n_trials`` finished ones; returns how many ran now.

    ``save_model(trial_number, model)`` stores a candidate's own weights (a recovered model) and returns
    where, recorded as the trial's ``model_dir`` so that export finds them."""
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # left running by an interrupted process: record it as failed so that it is not left dangling
        study.tell(stale.number, state=TrialState.FAIL)
    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)))
    todo = max(0, n_trials - finished)
    for _ in tqdm(range(todo), desc=strategy.name, unit="trial", disable=not progress, leave=False):
        trial = study.ask()
        params, config, description, info, artifacts, result, error = {}, None, "", {}, {}, None, None
        try:
            params = space.suggest(trial, context.num_layers, context.num_heads)
            candidate = strategy.propose(params, context)
            config, description, info = candidate.head_config, candidate.description, dict(candidate.info)
            artifacts = dict(candidate.artifacts)
            result = evaluate(candidate)
            values = [float(getattr(result, o)) for o in objectives]
            if any(math.isnan(v) for v in values):
                raise ValueError(f"objective is NaN: {dict(zip(objectives, values, strict=True))}")
            trial.set_user_attr("head_config", config.to_dict())
            trial.set_user_attr("objectives", result.to_dict())
            trial.set_user_attr("description", description)
            if info:
                trial.set_user_attr("info", info)
            if candidate.model is not None and save_model is not None:
                trial.set_user_attr("model_dir", save_model(trial.number, candidate.model))
            study.tell(trial, values)
        except Exception as exc:  # a failing trial is data, not the end of the study
            error = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("fail_reason", error)
            study.tell(trial, state=TrialState.FAIL)
            result = None
        if on_trial is not None:
            on_trial(TrialRecord(trial.number, params, result, config, description, error, info, artifacts))
    return todo

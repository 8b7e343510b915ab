"""Optuna samplers whose draws for a trial depend on the study's seed and the trial's place, not on the process.

A seeded Optuna sampler is one random stream per process: a resumed run starts the stream again (its first new
trial repeats the first trial's parameters), and several workers with one seed draw the same parameters.
``TrialSeeded`` gives each trial its own sampler, seeded from ``(seed, draw)`` with ``draw`` the trial's number less
the reruns numbered before it (a killed trial's parameters run again as an enqueued trial that draws nothing). So
the n-th fresh draw of a study is the same in one uninterrupted run, a run killed and resumed, a run that lost a
Ray node, and any number of workers; a sampler that also reads the study's history (TPE, NSGA-II) gives the same
parameters where that history is the same when the trial is asked (trials one at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

SAMPLERS: dict[str, Callable[[int], BaseSampler]] = {
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed),
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}

RERUN_ATTR = "rerun_of"  # user attribute of an enqueued trial that runs a killed trial's parameters again


def study_sampler(name: str, seed: int) -> TrialSeeded:
    """The sampler ``name`` (a key of ``SAMPLERS``) of a study seeded with ``seed``."""
    return TrialSeeded(SAMPLERS[name], seed)


def draw_seed(seed: int, draw: int) -> int:
    """The seed of a study's ``draw``-th fresh draw (NumPy's ``SeedSequence``: independent streams per draw)."""
    return int(np.random.SeedSequence([seed, draw]).generate_state(1)[0])


def draw_index(study: optuna.Study, number: int) -> int:
    """Trial ``number``'s place among the study's fresh draws: its number less the reruns numbered before it."""
    return number - sum(1 for t in study.get_trials(deepcopy=False)
                        if t.number < number and RERUN_ATTR in t.user_attrs)


class TrialSeeded(BaseSampler):
    """A sampler per trial, made by ``factory(draw_seed(seed, draw_index(...)))`` when the trial is asked; every
    call about that trial goes to it. Samplers built this way keep no state between trials but their random
    stream (Optuna's keep their history in the storage), so nothing is lost by making one per trial."""

    def __init__(self, factory: Callable[[int], BaseSampler], seed: int):
        self.factory, self.seed = factory, seed
        self._by_trial: dict[int, BaseSampler] = {}  # trial number -> its sampler, until the trial ends

    def _for(self, study: optuna.Study, trial: FrozenTrial) -> BaseSampler:
        sampler = self._by_trial.get(trial.number)
        if sampler is None:
            sampler = self._by_trial[trial.number] = self.factory(draw_seed(self.seed, draw_index(study, trial.number)))
        return sampler

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(study, trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._for(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._for(study, trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._for(study, trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._for(study, trial).after_trial(study, trial, state, values)
        self._by_trial.pop(trial.number, None)

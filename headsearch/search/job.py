"""The driver contract: a driver runs one strategy's trials (a ``StrategyJob``) and returns how many it ran.

A study (``headsearch.study``) prepares once, hands each strategy's job to its driver, and finishes;
it never branches on which driver runs. Every driver samples from the job's search space into the job's
Optuna study (its storage is the one record of trials), records each trial's outcome with
``Outcome.write`` and stops trials that train by the job's rungs:

- ``OptunaDriver``: trials one after another in this process (``headsearch.search.optuna_driver``);
  several ``headsearch worker`` processes may share the storage.
- ``RayDriver``: Ray Tune trials on a local Ray instance or a cluster (``headsearch.search.ray_driver``);
  each Ray worker process builds its runner once from the job's picklable ``remote_runner``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna

from headsearch.search.early_stopping import Rungs
from headsearch.search.trial import TrialRecord, TrialRunner
from headsearch.searchspace import SearchSpace


@dataclass
class StrategyJob:
    """One strategy's trials, as every driver needs them.

    ``local_runner``: builds the strategy's ``TrialRunner`` in this process (prepared once, on first call).
    ``remote_runner``: a picklable callable that builds it in another process (a Ray worker), once per process.
    ``on_ended``: logs a trial that ended outside its runner (stopped by a scheduler, or its worker died)."""

    study: optuna.Study
    space: SearchSpace
    n_trials: int
    objectives: tuple[str, ...]
    sampler: str
    seed: int
    storage: str
    hardware: Mapping[str, Any]
    rungs: Rungs
    num_layers: int
    num_heads: int
    local_runner: Callable[[], TrialRunner]
    remote_runner: Callable[[], TrialRunner]
    on_ended: Callable[[TrialRecord], None]
    experiment_dir: Path
    progress: bool = True


class Driver(Protocol):
    name: str

    def session(self) -> contextlib.AbstractContextManager:
        """Held around every strategy's run of one study (a Ray instance, for the Ray driver)."""

    def run(self, job: StrategyJob) -> int:
        """Run the job's missing trials (``n_trials`` finished or running in all); return how many ran here."""

"""The Strategy plug-in contract: a once-per-study ``prepare`` and ``propose(params, context) -> Candidate``.

A strategy knows nothing of Optuna, Ray, MLflow or the CLI: a driver samples ``params`` from the
strategy's search space and calls ``propose``. Anything expensive that does not depend on ``params``
is computed in ``prepare`` or memoised in ``context.cache``, which lives with the study, not with
the strategy object, so drivers in other processes can rebuild it.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from headsearch.analysis.head_scores import gradient_importance, layer_normalized
from headsearch.core import Candidate
from headsearch.data.text import TextDataset
from headsearch.heads import HeadConfig
from headsearch.models.headed import HeadedModel
from headsearch.models.text_classifier import TextClassifier
from headsearch.searchspace import load_space

__all__ = ["Candidate", "Strategy", "StudyContext"]  # Candidate lives in headsearch.core; strategies meet it here


@dataclass
class StudyContext:
    """What every strategy may use: the dense model, the data splits and a per-study cache.

    ``search``: the split candidates are scored on (accuracy objective). ``scoring``: a different
    split (a sample of train) for strategies that score heads, so scores never see the search split.
    ``train``: the training split, for strategies that fine-tune (recovery after pruning).
    """

    dense: TextClassifier
    search: TextDataset
    scoring: TextDataset
    seq_len: int
    seed: int = 0
    cache: dict[tuple[str, Hashable], Any] = field(default_factory=dict)  # through cached / cached_model only
    train: TextDataset | None = None
    # set by a driver that stops weak trials early (``headsearch.search.early_stopping``): sees each report
    progress_hook: Callable[[int, Callable[[], float], Callable[[], HeadConfig | float]], None] | None = field(
        default=None, repr=False)

    def report_progress(self, step: int, accuracy: Callable[[], float], cost: Callable[[], HeadConfig | float]) -> None:
        """Strategies that train call this after each epoch (``step`` counts from 1): ``accuracy()`` of the
        candidate as it stands on ``search``, and ``cost()``: the head configuration it stands at (the driver
        prices it as the study does: FLOPs ratio, or latency ratio where latency is an objective), or for a
        model routed per input its mean FLOPs ratio. Both are called only when the driver compares trials
        at this step, and the driver may end the trial here. The random state is restored after (a routed
        model's noise draws while it is measured), so reporting never changes how the trial trains."""
        if self.progress_hook is not None:
            with torch.random.fork_rng(devices=[]):
                self.progress_hook(step, accuracy, cost)

    @property
    def num_layers(self) -> int:
        return self.dense.model.num_layers

    def cached(self, namespace: str, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``, once per study for each ``(namespace, key)``. ``namespace``: the strategy's ``name``
        (``headsearch`` for the shared analyses, e.g. ``importance``), so plug-ins never collide with each
        other or with the built-ins; ``key``: the settings the value depends on. For analyses whose keys are
        few (settings from a short list); trained models go through ``cached_model``."""
        full = (namespace, key)
        if full not in self.cache:
            self.cache[full] = compute()
        return self.cache[full]

    MODELS_KEPT: ClassVar[int] = 2

    def cached_model(self, namespace: str, key: Hashable, compute: Callable[[], Any]) -> Any:
        """Like ``cached``, for trained models keyed by their training setting (continuous parameters make
        most keys unique): only the ``MODELS_KEPT`` most recently used per namespace stay, so memory does
        not grow with every trial. A later trial with a dropped setting trains it again."""
        models = self.cache.setdefault((namespace, "models"), OrderedDict())
        if key in models:
            models.move_to_end(key)
            return models[key]
        models[key] = value = compute()
        while len(models) > self.MODELS_KEPT:
            models.popitem(last=False)
        return value

    def importance(self, *, normalize_layers: bool = True) -> torch.Tensor:
        """Michel et al. gradient importance of every dense head on the scoring split (``[layers, heads]``),
        computed once per study (cache namespace ``headsearch``): the scores several strategies rank by, and
        the first round of every iterative-importance order. Both normalisations come from the one pass."""
        raw = self.cached("headsearch", ("importance", "one-shot"),
                          lambda: gradient_importance(self.dense, self.scoring, normalize_layers=False))
        return layer_normalized(raw) if normalize_layers else raw

    @property
    def num_heads(self) -> int:
        return self.dense.model.num_heads


@functools.cache
def _space_defaults(search_space: str) -> dict[str, Any]:
    return load_space(search_space).defaults()


class Strategy(ABC):
    """Base class of head-allocation strategies.

    Subclasses set ``name`` (the registry key) and ``search_space`` (a file in ``searchspaces/`` or a
    path), and implement ``propose``. ``prepare`` is called once per study before any ``propose``.
    Constructors take no arguments: everything a trial varies comes in ``params``.
    """

    name: ClassVar[str]
    search_space: ClassVar[str]
    # its candidates choose heads per input (data-dependent control flow): they run, and are timed, in eager PyTorch
    per_input: ClassVar[bool] = False

    @classmethod  # noqa: B027 - optional hook
    def check_model(cls, model: HeadedModel) -> None:
        """Raise ``HeadsearchError`` when this strategy cannot run on ``model``; called once per study, before any
        trial. Default: every HeadedModel will do."""

    def prepare(self, context: StudyContext) -> None:  # noqa: B027 - optional hook
        """Called once per study, before the first ``propose``. Default: nothing to prepare."""

    @abstractmethod
    def propose(self, params: Mapping[str, Any], context: StudyContext) -> Candidate:
        """Turn sampled ``params`` into a Candidate. Must be deterministic given params and context."""

    @classmethod
    def with_defaults(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` completed by the ``default``s of the strategy's search space (their one source)."""
        return {**_space_defaults(cls.search_space), **params}

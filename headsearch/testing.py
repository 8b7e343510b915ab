"""A conformance suite every strategy passes (the shape of Optuna's ``optuna.testing.pytest_samplers``).

Subclass ``StrategyConformance`` in a pytest module and set ``strategy`` to the class (or ``strategy_name`` to
a registered name) to get these tests for a plug-in, before or after it is installed::

    from headsearch.testing import StrategyConformance
    from my_package.first_heads import FirstHeads

    class TestFirstHeads(StrategyConformance):
        strategy = FirstHeads
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

import optuna
import pytest
import torch
from scipy.stats import spearmanr

from headsearch.data.synthetic import count_lookups, lookup_task, negation_task, vote_task
from headsearch.heads import HeadConfig
from headsearch.models.builtin import BuiltinConfig, build_builtin
from headsearch.models.training import TrainConfig, accuracy, train
from headsearch.searchspace import load_space
from headsearch.strategies.base import Candidate, Strategy, StudyContext
from headsearch.strategies.budgetformer import BudgetFormerStrategy, route
from headsearch.strategies.registry import get


def tiny_context(seed: int = 0, *, layers: int = 3, heads: int = 4, trained: bool = False) -> StudyContext:
    """A small built-in model on the synthetic negation task: enough for contract checks.

    Untrained by default (its outputs barely depend on the heads); ``trained=True`` fits it for a few
    seconds so that removing heads changes accuracy, which searches over masks need. Each call returns a fresh
    context (its own copy of the model, an empty cache); the fit is done once per process and shape."""
    train_data, clf = _tiny_model(seed, layers, heads, trained)
    search = negation_task(80 if trained else 40, seed=seed + 1, max_len=10)
    return StudyContext(copy.deepcopy(clf), search, train_data.head(40), seq_len=12, seed=seed, train=train_data)


@functools.cache
def _tiny_model(seed: int, layers: int, heads: int, trained: bool) -> tuple[Any, Any]:
    """``tiny_context``'s training data and model (never handed out: callers get copies)."""
    train_data = negation_task(1000 if trained else 120, seed=seed, max_len=10)
    width = 32 if trained else 16
    clf = build_builtin(train_data, BuiltinConfig(num_layers=layers, num_heads=heads, hidden_size=width,
                                                  intermediate_size=2 * width, max_length=12), seed=seed)
    if trained:
        train(clf, train_data, TrainConfig(epochs=8, learning_rate=3e-3, seed=seed), progress=False)
    return train_data, clf


DIFFICULTY_TASKS = {"lookup": (lookup_task, count_lookups), "vote": (vote_task, count_lookups)}


@dataclass(frozen=True)
class DifficultyRun:
    """BudgetFormer on a task whose need per input is known: how the learned budget follows the need
    on held-out rows (``need`` 1..4), and accuracy against the same model trained dense."""

    task: str
    seed: int
    spearman: float
    s_by_need: tuple[float, ...]
    heads_by_need: tuple[float, ...]
    accuracy: float
    dense_accuracy: float
    collapse: str | None

    @property
    def rises(self) -> bool:
        return list(self.s_by_need) == sorted(self.s_by_need) and self.s_by_need[0] < self.s_by_need[-1]


def difficulty_run(task: str, seed: int, *, rows: int = 4000, epochs: int = 15, heads: int = 8,
                   **params: Any) -> DifficultyRun:
    """Train a 1-layer built-in model (a transformers Llama) with ``heads`` heads of dimension 4 (its head
    size is hidden / heads; the retired own encoder used dimension 1, a rank-1 score matrix per head) on ``task``
    from scratch, once dense and once as
    BudgetFormer with the strategy's defaults (``params`` override them), both for ``epochs`` epochs on
    ``rows`` rows of seed ``100 + seed``; measured on 600 rows of seed ``200 + seed``. From scratch, as
    the paper trains: a model warm-started dense needs few epochs and its budgets barely move."""
    make, need_of = DIFFICULTY_TASKS[task]
    train_data, held_out = make(rows, seed=100 + seed), make(600, seed=200 + seed)
    clf = build_builtin(train_data, BuiltinConfig(num_layers=1, num_heads=heads, hidden_size=4 * heads,
                                                  intermediate_size=64, max_length=18, dropout=0.0), seed=seed)
    dense = copy.deepcopy(clf)
    train(dense, train_data, TrainConfig(epochs=epochs, learning_rate=3e-3, seed=seed), progress=False)
    clf.meta["training"] = {"config": {"learning_rate": 3e-3}}  # the model learning rate the strategy scales
    context = StudyContext(clf, held_out, train_data.head(100), seq_len=16, seed=seed, train=train_data)
    candidate = BudgetFormerStrategy().propose({"warm_start": False, "epochs": epochs, "train_rows": rows, **params},
                                               context)
    routing = route(candidate.model, held_out)
    need = torch.tensor([need_of(t) for t in held_out.texts])
    s, kept = routing.s.mean(1), routing.kept.sum((1, 2)).float()
    levels = sorted(set(need.tolist()))
    return DifficultyRun(task, seed, float(spearmanr(s.numpy(), need.numpy()).statistic),
                         tuple(round(float(s[need == n].mean()), 3) for n in levels),
                         tuple(round(float(kept[need == n].mean()), 2) for n in levels),
                         accuracy(candidate.model, held_out), accuracy(dense, held_out), candidate.info["collapse"])


@dataclass
class Proposals:
    """What one conformance run of a strategy produced, shared by the checks of its class."""

    strategy: Strategy
    context: StudyContext
    params: list[dict]
    candidates: list[Candidate]
    dense_before: dict


class StrategyConformance:
    """The checks every strategy passes. The strategy proposes once per sampled parameter set (``SEEDS``)
    on one tiny context, and every check reads those proposals: one run per strategy.

    Set ``strategy`` to the class (it need not be installed), or ``strategy_name`` to a registered name
    (a built-in or an installed plug-in); or override the class-scoped ``strategy_class`` fixture."""

    strategy: type[Strategy] | None = None
    strategy_name: str = ""
    SEEDS = (0, 1, 2)

    @pytest.fixture(scope="class")
    @classmethod
    def strategy_class(cls) -> type[Strategy]:
        if cls.strategy is not None:
            return cls.strategy
        if not cls.strategy_name:
            raise TypeError(f"{cls.__name__}: set strategy (a Strategy class) or strategy_name (a registered name).")
        found = get(cls.strategy_name).cls
        assert found.name == cls.strategy_name, f"registered as {cls.strategy_name!r}, named {found.name!r}"
        return found

    @pytest.fixture(scope="class")
    @staticmethod
    def space_overrides() -> dict[str, dict[str, Any]]:
        """Per-parameter changes to the search space the proposals are sampled from (as a study's ``space:``),
        e.g. a lower cap on a costly parameter; default none."""
        return {}

    @pytest.fixture(scope="class")
    @classmethod
    def proposals(cls, strategy_class: type[Strategy], space_overrides: dict[str, dict[str, Any]]) -> Proposals:
        strategy, context = strategy_class(), tiny_context()
        before = {k: v.clone() for k, v in context.dense.model.state_dict().items()}
        strategy.prepare(context)
        params = [cls._params(strategy, context, seed, space_overrides) for seed in cls.SEEDS]
        return Proposals(strategy, context, params, [strategy.propose(p, context) for p in params], before)

    @staticmethod
    def _params(strategy: Strategy, context: StudyContext, seed: int, overrides: dict[str, dict[str, Any]]) -> dict:
        space = load_space(strategy.search_space, overrides)
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
        return space.suggest(trial, context.num_layers, context.num_heads)

    def test_is_a_named_strategy_with_a_loadable_search_space(self, strategy_class: type[Strategy]) -> None:
        assert issubclass(strategy_class, Strategy)
        assert isinstance(strategy_class.name, str) and strategy_class.name
        load_space(strategy_class.search_space)

    def test_info_is_json(self, proposals: Proposals) -> None:
        for candidate in proposals.candidates:
            candidate.check_info()

    def test_proposals_fit_the_model(self, proposals: Proposals) -> None:
        context = proposals.context
        for candidate in proposals.candidates:
            assert isinstance(candidate, Candidate) and isinstance(candidate.head_config, HeadConfig)
            candidate.head_config.check_fits(context.num_layers, context.num_heads,
                                             allow_empty_layers=context.dense.model.can_skip_attention)

    def test_proposals_are_deterministic(self, proposals: Proposals) -> None:
        strategy, context, params = proposals.strategy, proposals.context, proposals.params[0]
        assert strategy.propose(params, context) == proposals.candidates[0]
        # a fresh strategy object and a fresh context reach the same answer: no hidden state
        other, fresh = type(strategy)(), tiny_context()
        other.prepare(fresh)
        assert other.propose(params, fresh).head_config == proposals.candidates[0].head_config

    def test_propose_does_not_change_the_dense_model(self, proposals: Proposals) -> None:
        context = proposals.context
        after = context.dense.model.state_dict()
        assert all(proposals.dense_before[k].equal(after[k]) for k in proposals.dense_before)
        assert context.dense.model.head_config == HeadConfig.dense(context.num_layers, context.num_heads)

"""A conformance suite every strategy passes (the shape of Optuna's ``optuna.testing.pytest_samplers``).

Subclass ``StrategyConformance`` in a pytest module and set ``strategy_name`` (or override the
``strategy`` fixture) to get these tests for a plug-in::

    from headsearch.testing import StrategyConformance

    class TestMyStrategy(StrategyConformance):
        strategy_name = "my-strategy"
"""

from __future__ import annotations

import optuna
import pytest

from headsearch.data.synthetic import negation_task
from headsearch.heads import HeadConfig
from headsearch.models.builtin import BuiltinConfig, build_builtin
from headsearch.models.training import TrainConfig, train
from headsearch.searchspace import load_space
from headsearch.strategies.base import Candidate, Strategy, StudyContext
from headsearch.strategies.registry import get


def tiny_context(seed: int = 0, *, layers: int = 3, heads: int = 4, trained: bool = False) -> StudyContext:
    """A small built-in model on the synthetic negation task: enough for contract checks.

    Untrained by default (its outputs barely depend on the heads); ``trained=True`` fits it for a few
    seconds so that removing heads changes accuracy, which searches over masks need."""
    train_data = negation_task(1000 if trained else 120, seed=seed, max_len=10)
    width = 32 if trained else 16
    clf = build_builtin(train_data, BuiltinConfig(num_layers=layers, num_heads=heads, hidden_size=width,
                                                  intermediate_size=2 * width, max_length=12), seed=seed)
    if trained:
        train(clf, train_data, TrainConfig(epochs=8, learning_rate=3e-3, seed=seed), progress=False)
    search = negation_task(80 if trained else 40, seed=seed + 1, max_len=10)
    return StudyContext(clf, search, train_data.head(40), seq_len=12, seed=seed, train=train_data)


class StrategyConformance:
    strategy_name: str = ""

    @pytest.fixture()
    def strategy(self) -> Strategy:
        return get(self.strategy_name).cls()

    @pytest.fixture()
    def context(self) -> StudyContext:
        return tiny_context()

    def _params(self, strategy: Strategy, context: StudyContext, seed: int) -> dict:
        space = load_space(strategy.search_space)
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
        return space.suggest(trial, context.num_layers, context.num_heads)

    def test_has_name_and_loadable_search_space(self, strategy: Strategy) -> None:
        assert strategy.name == self.strategy_name
        load_space(strategy.search_space)

    def test_proposals_fit_the_model(self, strategy: Strategy, context: StudyContext) -> None:
        strategy.prepare(context)
        for seed in range(5):
            candidate = strategy.propose(self._params(strategy, context, seed), context)
            assert isinstance(candidate, Candidate) and isinstance(candidate.head_config, HeadConfig)
            candidate.head_config.check_fits(context.num_layers, context.num_heads,
                                             allow_empty_layers=context.dense.model.can_skip_attention)

    def test_proposals_are_deterministic(self, strategy: Strategy, context: StudyContext) -> None:
        strategy.prepare(context)
        params = self._params(strategy, context, 7)
        assert strategy.propose(params, context) == strategy.propose(params, context)
        # a fresh strategy object and a fresh context reach the same answer: no hidden state
        other, fresh = type(strategy)(), tiny_context()
        other.prepare(fresh)
        assert other.propose(params, fresh).head_config == strategy.propose(params, context).head_config

    def test_propose_does_not_change_the_dense_model(self, strategy: Strategy, context: StudyContext) -> None:
        before = {k: v.clone() for k, v in context.dense.model.state_dict().items()}
        strategy.prepare(context)
        strategy.propose(self._params(strategy, context, 3), context)
        after = context.dense.model.state_dict()
        assert all(before[k].equal(after[k]) for k in before)
        assert context.dense.model.head_config == HeadConfig.dense(context.num_layers, context.num_heads)

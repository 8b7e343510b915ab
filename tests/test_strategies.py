"""Every registered strategy passes the conformance suite; baselines behave as their papers say."""

import pytest
import torch
from floats import assert_close

from headsearch.analysis.head_scores import gradient_importance
from headsearch.heads import HeadConfig, heads_for_budget, split_heads
from headsearch.models.hf.surgery import get_module
from headsearch.strategies import available
from headsearch.testing import StrategyConformance, tiny_context


@pytest.mark.parametrize("name", sorted(available()), scope="class")
class TestEveryStrategy(StrategyConformance):
    """The conformance checks, once for every registered strategy (built-in and installed plug-ins)."""

    @pytest.fixture(scope="class")
    @staticmethod
    def strategy_class(name):
        return available()[name].cls

    @pytest.fixture(scope="class")
    @staticmethod
    def space_overrides(name):
        # A* samples up to 5,000 masks per search; on the tiny model (12 heads) 100 already reach 9 heads removed
        return {"astar": {"max_masks": {"low": 50, "high": 100, "default": 100}}}.get(name, {})

    def test_registered_under_its_own_name(self, name, strategy_class):
        assert strategy_class.name == name


def test_top_keeps_best_and_one_per_layer():
    scores = [[0.1, 0.9, 0.2], [0.05, 0.01, 0.02], [0.8, 0.7, 0.6]]
    config = HeadConfig.top(scores, 4)
    assert config.kept == ((1,), (0,), (0, 1))
    assert HeadConfig.top(scores, 3).kept == ((1,), (0,), (0,))
    assert heads_for_budget(0.01, 3, 4) == 3 and heads_for_budget(1.0, 3, 4) == 12


def test_importance_ranks_a_useless_head_last():
    context = tiny_context()
    model = context.dense.model
    with torch.no_grad():  # head 2 of layer 0 writes nothing: its output-projection columns are zero
        get_module(model._layers()[0], model.family.output).weight[:, 2 * model.head_dim:3 * model.head_dim] = 0
    scores = gradient_importance(context.dense, context.scoring)
    assert scores[0, 2].item() == 0.0
    assert all(scores[0, h] > 0 for h in (0, 1, 3))
    assert torch.allclose(scores.norm(dim=1), torch.ones(model.num_layers))  # per-layer L2 normalisation


def test_importance_gradient_equals_finite_difference():
    """E_x |dL(x)/d gate| by autograd equals the mean over examples of each example's loss slope as the gate moves
    (the Taylor criterion, absolute value per example as the paper's formula reads)."""
    context = tiny_context()
    data = context.scoring.head(8)
    context.dense.model.double()
    scores = gradient_importance(context.dense, data, normalize_layers=False, batch_size=3)
    ids, mask = context.dense.encode(data.texts)
    labels = torch.tensor(data.labels)

    def losses(g):
        return torch.nn.functional.cross_entropy(context.dense.model(ids, mask, gates=g), labels, reduction="none")

    gates = torch.ones(3, 4, dtype=torch.float64)
    # Llama's RMSNorm computes in float32 even in a float64 model, so the loss is exact to ~1e-7 only: a step of 1e-2
    # keeps that noise (1e-7 / 1e-2) and the central difference's own error (~1e-5 relative) below the tolerance
    eps = 1e-2
    plus, minus = gates.clone(), gates.clone()
    plus[1, 2] += eps
    minus[1, 2] -= eps
    slopes = (losses(plus) - losses(minus)) / (2 * eps)
    assert scores[1, 2].item() == pytest.approx(slopes.abs().mean().item(), rel=1e-3)
    assert slopes.abs().mean() > slopes.mean().abs() * 1.01  # the examples disagree in sign: per-example |.| matters


def test_importance_does_not_depend_on_how_rows_are_batched():
    context = tiny_context()
    mask = torch.ones(3, 4)
    mask[0, 1] = 0.0
    one = gradient_importance(context.dense, context.scoring, mask=mask, batch_size=1)
    for batch_size in (7, 64):
        # the same per-example sums added in another order: float32 rounding only (tests/floats.py)
        assert_close(gradient_importance(context.dense, context.scoring, mask=mask, batch_size=batch_size), one)


def test_iterative_order_is_a_prefix_chain():
    from headsearch.strategies.importance import ImportanceStrategy

    context = tiny_context()
    strategy = ImportanceStrategy()
    strategy.prepare(context)
    small = strategy.propose({"budget": 0.3, "iterative": True, "normalize_layers": True, "step": 0.1}, context)
    large = strategy.propose({"budget": 0.7, "iterative": True, "normalize_layers": True, "step": 0.1}, context)
    assert small.head_config.is_subset_of(large.head_config)
    assert small.head_config.total_kept == heads_for_budget(0.3, 3, 4)
    assert 0 not in small.head_config.counts


def test_every_importance_ranking_shares_the_one_dense_gradient_pass(monkeypatch):
    """One-shot scores (both normalisations) and every iterative order's first round come from one pass at the
    dense mask."""
    from headsearch.strategies import base, importance

    passes: list[bool] = []  # per gradient pass: whether it ran at the dense mask

    def counting(clf, data, *, mask=None, **kwargs):
        passes.append(mask is None or bool(mask.all()))
        return gradient_importance(clf, data, mask=mask, **kwargs)

    monkeypatch.setattr(base, "gradient_importance", counting)
    monkeypatch.setattr(importance, "gradient_importance", counting)
    context = tiny_context()
    strategy = importance.ImportanceStrategy()
    strategy.prepare(context)
    proposed = {}
    for normalize in (True, False):
        for iterative in (False, True):
            for step in (0.1, 0.05) if iterative else (0.1,):
                params = {"budget": 0.5, "iterative": iterative, "normalize_layers": normalize, "step": step}
                proposed[normalize, iterative, step] = strategy.propose(params, context).head_config
    assert passes.count(True) == 1 and passes.count(False) > 0
    for normalize in (True, False):
        expected = gradient_importance(context.dense, context.scoring, normalize_layers=normalize)
        assert proposed[normalize, False, 0.1] == HeadConfig.top(expected.tolist(), heads_for_budget(0.5, 3, 4))
        first = importance.removal_order(context, normalize_layers=normalize, step=0.1)[0]
        assert first == divmod(int(expected.argmin()), 4)  # round one ranks by that pass


def test_nas_splits_its_budget_and_takes_the_most_important_heads_per_layer():
    from headsearch.strategies.nas import NasStrategy

    context = tiny_context()
    strategy = NasStrategy()
    strategy.prepare(context)
    # 7 of 12 heads (3 layers x 4) split 0 : 1 : 0.5 -> one each, then 3 to layer 1 and 1 to layer 2
    candidate = strategy.propose({"budget": 7 / 12, "share_layer_0": 0.0, "share_layer_1": 1.0, "share_layer_2": 0.5},
                                 context)
    scores = gradient_importance(context.dense, context.scoring)
    assert candidate.head_config.counts == (1, 4, 2)
    assert candidate.head_config.kept[0] == (int(scores[0].argmax()),)
    assert set(candidate.head_config.kept[2]) == set(scores[2].argsort(descending=True)[:2].tolist())


def test_split_heads_follows_the_shares_within_the_layer_bounds():
    assert split_heads(12, [1, 1, 1], 8) == [4, 4, 4]
    assert split_heads(3, [0.9, 0.1, 0.0], 8) == [1, 1, 1]  # every layer keeps one
    assert split_heads(20, [1, 0, 0], 8) == [8, 6, 6]  # layer 0 full: the rest goes where there is room
    assert split_heads(24, [0.2, 0.7, 0.1], 8) == [8, 8, 8]
    assert split_heads(10, [0, 0, 0], 8) == [4, 3, 3]  # no preference: an even split
    counts = split_heads(50, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 12)
    assert sum(counts) == 50 and counts == sorted(counts) and all(1 <= c <= 12 for c in counts)
    with pytest.raises(ValueError, match="between 3 and 24"):
        split_heads(2, [1, 1, 1], 8)


def test_random_is_seeded_and_meets_budget():
    from headsearch.strategies.random_heads import RandomStrategy

    context = tiny_context()
    s = RandomStrategy()
    a = s.propose({"budget": 0.5, "seed": 3}, context).head_config
    assert a == s.propose({"budget": 0.5, "seed": 3}, context).head_config
    assert a.total_kept == 6 and 0 not in a.counts
    others = {s.propose({"budget": 0.5, "seed": k}, context).head_config for k in range(10)}
    assert len(others) > 1

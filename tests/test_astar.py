"""A* head pruning: exact against exhaustive search where its heuristic is admissible; limits respected."""

import itertools
import random

import pytest
import torch
from floats import same_score

from headsearch.analysis.mask_eval import MaskEvaluator, MaskScore, ScoringCounts
from headsearch.strategies.astar import AStarSettings, AStarStrategy, astar_prune
from headsearch.testing import tiny_context


class MonotoneOracle:
    """Accuracy that only falls as heads are removed (per-head costs plus pairwise interactions)."""

    def __init__(self, layers: int, heads: int, seed: int):
        rng = random.Random(seed)
        self.num_layers, self.num_heads = layers, heads
        n = layers * heads
        self.cost = [rng.choice([0.0, 0.0, 0.002, 0.01, 0.03]) for _ in range(n)]
        self.pair = {(a, b): rng.choice([0.0, 0.0, 0.0, 0.004, 0.02]) for a, b in itertools.combinations(range(n), 2)}
        self.evaluations = 0
        self.counts = ScoringCounts()

    def accuracy(self, pruned: set[int]) -> float:
        drop = sum(self.cost[x] for x in pruned) + sum(self.pair[p] for p in itertools.combinations(sorted(pruned), 2))
        return 0.9 - drop

    def score(self, masks, reference=None, at_least=None):
        self.evaluations += len(masks)
        return [MaskScore(self.accuracy({i for i, v in enumerate(m.flatten().tolist()) if v == 0}), 0.0) for m in masks]

    def importance(self, mask):
        return torch.tensor(self.cost).view(self.num_layers, self.num_heads)


def _all_states(layers, heads):
    """Every pruned set that leaves each layer at least one head."""
    per_layer = [[frozenset(i * heads + h for h in c) for r in range(heads) for c in itertools.combinations(range(heads), r)]
                 for i in range(layers)]
    return [frozenset().union(*combo) for combo in itertools.product(*per_layer)]


def _scores_of_all(evaluator, layers, heads):
    states = _all_states(layers, heads)
    masks = []
    for s in states:
        m = torch.ones(layers * heads)
        m[list(s)] = 0
        masks.append(m.view(layers, heads))
    return dict(zip(states, evaluator.score(masks), strict=True))


def _largest_reachable(scores, threshold):
    """Exhaustive answer on A*'s state space: feasible sets reachable by one feasible removal at a time."""
    reachable = {frozenset()}
    frontier = [frozenset()]
    while frontier:
        nxt = []
        for state in frontier:
            for child in scores:
                if len(child) == len(state) + 1 and state < child and child not in reachable \
                        and scores[child].accuracy >= threshold:
                    reachable.add(child)
                    nxt.append(child)
        frontier = nxt
    return max(len(s) for s in reachable)


@pytest.mark.parametrize("seed", range(6))
def test_ablation_heuristic_is_exact_when_accuracy_is_monotone(seed):
    oracle = MonotoneOracle(2, 4, seed)
    scores = _scores_of_all(oracle, 2, 4)
    for epsilon in (0.0, 0.01, 0.03):
        threshold = 0.9 - epsilon
        optimum = max(len(s) for s, sc in scores.items() if sc.accuracy >= threshold)  # over all 225 masks
        oracle.evaluations = 0
        result = astar_prune(oracle, AStarSettings(epsilon=epsilon, branching=0, heuristic="ablation"))
        assert len(result.pruned) == optimum
        assert oracle.accuracy(set(result.pruned)) >= threshold
        assert result.stop_reason == "optimal"
        assert result.evaluations == oracle.evaluations
        # weighted A* run to the end is exact too: it only skips states whose bound cannot beat the best
        weighted = astar_prune(oracle, AStarSettings(epsilon=epsilon, branching=0, heuristic="ablation", weight=0.3))
        assert len(weighted.pruned) == optimum and weighted.stop_reason == "frontier empty"


def test_ablation_heuristic_prunes_the_search():
    """On a larger monotone problem the heuristic reaches the optimum with far fewer masks than exist."""
    oracle = MonotoneOracle(3, 4, seed=3)
    scores = _scores_of_all(oracle, 3, 4)
    optimum = max(len(s) for s, sc in scores.items() if sc.accuracy >= 0.89)
    result = astar_prune(oracle, AStarSettings(epsilon=0.01, branching=0, heuristic="ablation"))
    assert len(result.pruned) == optimum
    assert result.evaluations < len(scores) / 4


def test_smaller_weight_goes_deeper_within_a_budget():
    """A* proper spends a small budget near the root; weighted A* reaches larger feasible sets."""
    for seed in range(3):
        oracle = MonotoneOracle(4, 6, seed)
        depth = {w: len(astar_prune(oracle, AStarSettings(epsilon=0.05, branching=4, weight=w, max_masks=400)).pruned)
                 for w in (1.0, 0.0)}
        assert depth[0.0] > depth[1.0]


@pytest.fixture(scope="module", params=[0, 1, 2])
def model_2x4(request):
    context = tiny_context(request.param, layers=2, heads=4, trained=True)
    return context, MaskEvaluator(context.dense, context.search)


@pytest.mark.parametrize("epsilon", [0.0, 0.025])
def test_bound_heuristic_equals_exhaustive_search_on_a_real_model(model_2x4, epsilon):
    """Every one of the 225 masks scored; A* with the always-admissible bound finds the largest set."""
    context, evaluator = model_2x4
    scores = _scores_of_all(evaluator, 2, 4)
    dense = scores[frozenset()].accuracy
    result = astar_prune(evaluator, AStarSettings(epsilon=epsilon, branching=0, heuristic="bound"))
    assert len(result.pruned) == _largest_reachable(scores, dense - epsilon)
    weighted = astar_prune(evaluator, AStarSettings(epsilon=epsilon, branching=0, heuristic="bound", weight=0.0))
    assert len(weighted.pruned) == len(result.pruned)
    assert scores[result.pruned].accuracy >= dense - epsilon
    assert same_score(result.score, scores[result.pruned])  # scored in other batches than the exhaustive pass
    assert result.head_config.total_kept == 8 - len(result.pruned)


def test_budget_and_time_limit_return_the_best_feasible_state(model_2x4):
    _, evaluator = model_2x4
    full = astar_prune(evaluator, AStarSettings(epsilon=0.025, branching=0, heuristic="bound"))
    small = astar_prune(evaluator, AStarSettings(epsilon=0.025, branching=0, heuristic="bound", max_masks=10))
    assert small.stop_reason == "max masks" and small.evaluations <= 10 < full.evaluations
    assert small.score.accuracy >= small.threshold
    timed = astar_prune(evaluator, AStarSettings(epsilon=0.025, heuristic="bound", time_limit_s=1e-9))
    assert timed.stop_reason == "time limit" and timed.evaluations == 1 and timed.pruned == frozenset()


@pytest.mark.parametrize("heuristic", ["ablation", "importance"])
def test_limited_branching_stays_feasible_and_within_budget(model_2x4, heuristic):
    _, evaluator = model_2x4
    result = astar_prune(evaluator, AStarSettings(epsilon=0.05, branching=2, heuristic=heuristic, max_masks=40))
    assert result.evaluations <= 40
    assert result.score.accuracy >= result.threshold
    assert result.importance_passes == (result.expansions if heuristic == "importance" else 0)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("epsilon", -0.1, "'epsilon'"), ("weight", 1.5, "'weight'"), ("branching", -1, "'branching'"),
    ("heuristic", "greedy", "'heuristic'"),
    ("max_masks", 0, "'max_masks'"), ("time_limit_s", 0, "'time_limit_s'"),
])
def test_bad_settings(field, value, message):
    with pytest.raises(ValueError, match=message):
        AStarSettings(**{field: value})
    with pytest.raises(ValueError, match="branching >= 1"):
        AStarSettings(heuristic="importance", branching=0)


def test_strategy_reports_the_search_subset_and_the_held_out_rows():
    context = tiny_context(layers=2, heads=4, trained=True)
    params = {"epsilon": 0.05, "branching": 4, "heuristic": "ablation", "eval_rows": 50, "max_masks": 100,
              "time_limit_s": 60}
    candidate = AStarStrategy().propose(params, context)
    info = candidate.info
    assert info["search_rows"] == 50 and info["heldout_rows"] == 30
    assert info["search_accuracy"] >= info["dense_search_accuracy"] - 0.05
    assert 0.0 <= info["heldout_accuracy"] <= 1.0
    assert AStarStrategy().propose(params, context) == candidate  # cached per setting, deterministic


def decisions(r):
    """What a search decided (compared exactly); its score's loss is compared up to rounding (``same_score``)."""
    return r.pruned, r.score.accuracy, r.score.exact, r.trace, r.evaluations, r.expansions, r.stop_reason


class FullScoring(MaskEvaluator):
    """Today's scorer before early stopping: every mask on every row."""

    def score(self, masks, reference=None, at_least=None):
        return super().score(masks, reference)


@pytest.mark.parametrize(("heuristic", "branching"), [("ablation", 0), ("importance", 3)])
def test_early_stopped_scoring_leaves_the_search_unchanged(model_2x4, heuristic, branching):
    context, _ = model_2x4
    settings = AStarSettings(epsilon=0.025, branching=branching, heuristic=heuristic, max_masks=80)
    evaluator = MaskEvaluator(context.dense, context.search)  # an empty memo
    early = astar_prune(evaluator, settings)
    full = astar_prune(FullScoring(context.dense, context.search), settings)
    assert decisions(early) == decisions(full) and same_score(early.score, full.score)
    assert early.scoring["stopped_early"] > 0 and full.scoring["stopped_early"] == 0
    assert early.scoring["mask_rows"] < full.scoring["mask_rows"]
    again = astar_prune(evaluator, settings)  # a second trial on the same evaluator: every mask from the memo
    assert decisions(again) == decisions(early) and again.scoring["memo_hits"] == again.scoring["masks"]
    assert again.scoring["mask_rows"] == 0

"""BudgetFormer: the strategy contract, the learned budget on a task whose head needs are known, and a study."""

from __future__ import annotations

import pytest

from headsearch.strategies.budgetformer import BudgetFormerStrategy
from headsearch.testing import DifficultyRun, difficulty_run, tiny_context


@pytest.fixture(scope="module", params=[0, 1, 2], ids=lambda seed: f"seed{seed}")
def lookup_run(request) -> DifficultyRun:
    return difficulty_run("lookup", request.param)


@pytest.mark.slow  # trains a dense model and a router from scratch per seed (~35 s): in the slow suite, which CI runs
def test_learned_budget_rises_with_the_number_of_lookups(lookup_run: DifficultyRun) -> None:
    """1..4 lookups per input, each needing about one head of dimension 1 (``lookup_task``), 8 heads,
    the strategy's defaults (target mean budget 0.5): on every seed s must rise with the lookups."""
    print(lookup_run)
    assert lookup_run.spearman > 0.5, lookup_run
    assert lookup_run.rises, lookup_run
    assert lookup_run.heads_by_need[-1] > lookup_run.heads_by_need[0] + 0.5, lookup_run  # heads run, not only s
    assert lookup_run.collapse is None
    assert lookup_run.accuracy > lookup_run.dense_accuracy - 0.05, lookup_run  # measured: -3.0 to +5.6 points


@pytest.fixture(scope="module")
def trained_context():
    return tiny_context(0, trained=True)  # trained once for this module; each test trains its own router


@pytest.mark.parametrize("per_layer", [True, False])
def test_candidate_reports_the_budget_distribution(per_layer: bool, trained_context) -> None:
    context = trained_context
    candidate = BudgetFormerStrategy().propose({"per_layer": per_layer, "epochs": 1}, context)
    info = candidate.info
    assert 0.1 <= info["s_p10"] <= info["s_p50"] <= info["s_p90"] <= 0.9
    assert candidate.model.router.spec.per_layer is per_layer
    assert candidate.head_config == context.dense.model.head_config  # every head stays; the router picks per input
    assert set(candidate.artifacts) == {"budget_s_hist.png", "budget_s_by_class.png", "budget_s_by_length.png",
                                        "heads_chosen.png"}
    assert all(png.startswith(b"\x89PNG") for png in candidate.artifacts.values())


def test_a_collapsed_budget_is_reported_and_warned(trained_context) -> None:
    """With s_min = s_max every budget sits at the bound: the epoch check must say so, in info and a warning."""
    context = trained_context
    params = {"s_min": 0.5, "s_max": 0.5, "target_budget": 0.5, "epochs": 1}
    with pytest.warns(UserWarning, match="after epoch 1 the budgets collapsed to s_min"):
        candidate = BudgetFormerStrategy().propose(params, context)
    assert candidate.info["collapse"] == "collapsed to s_min"
    (epoch,) = candidate.info["budget_epochs"]
    assert epoch["at_min"] == 1.0 and epoch["mean"] == pytest.approx(0.5)

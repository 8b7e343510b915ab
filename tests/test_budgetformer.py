"""BudgetFormer: the strategy contract, the learned budget on a task whose head needs are known, and a study."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from scipy.stats import spearmanr

from headsearch.data.synthetic import count_lookups, lookup_task
from headsearch.models.builtin import BuiltinConfig, _init_weights, build_builtin
from headsearch.models.classifier import HeadedClassifier
from headsearch.strategies.base import StudyContext
from headsearch.strategies.budgetformer import BudgetFormerStrategy, route


@pytest.mark.slow  # trains a router to convergence (~15 s): in the slow suite, which CI also runs
def test_learned_budget_rises_with_the_number_of_lookups() -> None:
    """1..4 lookups per input, each needing about one head of a 1-layer, 4-head encoder with head dimension 1
    (``lookup_task``). Trained from scratch with the router, as the paper trains: s must rise with the lookups."""
    train = lookup_task(4000, seed=0)
    held_out = lookup_task(600, seed=1)
    clf = build_builtin(train, BuiltinConfig(num_layers=1, num_heads=4, hidden_size=32, intermediate_size=64,
                                             max_length=16, dropout=0.0), seed=0)
    clf.model = HeadedClassifier(dataclasses.replace(clf.model.spec, head_dim=1))  # rank-1 scores: one pairing per head
    _init_weights(clf.model)
    clf.meta["training"] = {"config": {"learning_rate": 3e-3}}  # the model learning rate the strategy scales
    context = StudyContext(clf, held_out, train.head(100), seq_len=16, seed=0, train=train)
    params = {"warm_start": False, "epochs": 15, "train_rows": 4000, "budget_weight": 0.02}
    candidate = BudgetFormerStrategy().propose(params, context)
    routing = route(candidate.model, held_out)
    lookups = torch.tensor([count_lookups(t) for t in held_out.texts])
    s = routing.s.mean(1)
    rho = spearmanr(s.numpy(), lookups.numpy()).statistic
    by_lookups = [round(float(s[lookups == n].mean()), 3) for n in range(1, 5)]
    print(f"Spearman(s, lookups) = {rho:.3f}; mean s by lookups 1..4: {by_lookups}")
    assert rho > 0.5, by_lookups
    assert by_lookups == sorted(by_lookups)
    correct = candidate.model.logits(list(held_out.texts)).argmax(-1) == torch.tensor(held_out.labels)
    assert correct.float().mean() > 0.8  # the budget is not bought with a broken model


@pytest.mark.parametrize("per_layer", [True, False])
def test_candidate_reports_the_budget_distribution(per_layer: bool) -> None:
    from headsearch.testing import tiny_context

    context = tiny_context(0, trained=True)
    candidate = BudgetFormerStrategy().propose({"per_layer": per_layer, "epochs": 1}, context)
    info = candidate.info
    assert 0.1 <= info["s_p10"] <= info["s_p50"] <= info["s_p90"] <= 0.9
    assert candidate.model.router.spec.per_layer is per_layer
    assert candidate.head_config == context.dense.model.head_config  # every head stays; the router picks per input
    assert set(candidate.artifacts) == {"budget_s_hist.png", "budget_s_by_class.png", "budget_s_by_length.png",
                                        "heads_chosen.png"}
    assert all(png.startswith(b"\x89PNG") for png in candidate.artifacts.values())

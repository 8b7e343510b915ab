"""Baseline: Michel et al. 2019 gradient head importance, one-shot or with iterative re-scoring.

Scores come from ``headsearch.analysis.head_scores.gradient_importance`` on the study's *scoring* split (a
train sample), never on the search split the candidates are evaluated on. One-shot: keep the
highest-scored heads. Iterative (the paper's Fig. 4 procedure): remove ``step`` of all heads with the
lowest scores, re-score with those heads masked, repeat; the removal order is computed once per study
and a trial's budget takes a prefix of it. Every order's first round is the study's one-shot pass.
Departure from the paper: the paper stops at an accuracy threshold; here the budget is the searched
parameter and accuracy is an objective. Every layer keeps at least one head.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from headsearch.analysis.head_scores import gradient_importance
from headsearch.heads import HeadConfig, heads_for_budget
from headsearch.strategies.base import Candidate, Strategy, StudyContext


def removal_order(context: StudyContext, *, normalize_layers: bool, step: float) -> list[tuple[int, int]]:
    """Heads in the order iterative pruning removes them (never a layer's last head)."""
    L, H = context.num_layers, context.num_heads
    mask = torch.ones(L, H)
    order: list[tuple[int, int]] = []
    per_round = max(1, round(step * L * H))
    while len(order) < L * H - L:
        scores = context.importance(normalize_layers=normalize_layers) if not order else \
            gradient_importance(context.dense, context.scoring, mask=mask, normalize_layers=normalize_layers)
        alive = [(scores[i, h].item(), i, h) for i in range(L) for h in range(H) if mask[i, h] > 0]
        removed = 0
        for _, i, h in sorted(alive):
            if removed == per_round:
                break
            if mask[i].sum() > 1:
                mask[i, h] = 0.0
                order.append((i, h))
                removed += 1
    return order


class ImportanceStrategy(Strategy):
    name = "importance"
    search_space = "importance.yaml"

    def prepare(self, context: StudyContext) -> None:
        context.importance()

    def propose(self, params: Mapping[str, Any], context: StudyContext) -> Candidate:
        params = self.with_defaults(params)
        L, H = context.num_layers, context.num_heads
        total = heads_for_budget(params["budget"], L, H)
        normalize = params["normalize_layers"]
        if not params["iterative"]:
            scores = context.importance(normalize_layers=normalize)
            return Candidate(HeadConfig.top(scores.tolist(), total), f"top {total} heads by importance")
        step = params["step"]
        order = context.cached("importance", ("iterative", normalize, step),
                               lambda: removal_order(context, normalize_layers=normalize, step=step))
        removed = set(order[: L * H - total])
        kept = tuple(tuple(h for h in range(H) if (i, h) not in removed) for i in range(L))
        return Candidate(HeadConfig(kept, H), f"{total} heads after iterative pruning (step {step})")

"""Shared head-selection helpers: how many heads a fraction means, keeping the best-scored ones, and the
one-shot importance scores that several strategies read (computed once per study, kept in its cache)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from headsearch.head_scores import gradient_importance
from headsearch.heads import HeadConfig
from headsearch.strategies.base import StudyContext


def one_shot_importance(context: StudyContext, *, normalize_layers: bool = True) -> torch.Tensor:
    """Michel et al. importance of every dense head on the scoring split, memoised in ``context.cache``."""
    return context.cached(("importance", "one-shot", normalize_layers),
                          lambda: gradient_importance(context.dense, context.scoring, normalize_layers=normalize_layers))


def heads_for_fraction(fraction: float, num_layers: int, num_heads: int) -> int:
    """Number of heads a kept fraction means, at least one per layer and at most all."""
    total = num_layers * num_heads
    return max(num_layers, min(total, round(fraction * total)))


def keep_top(scores: Sequence[Sequence[float]], budget: int) -> HeadConfig:
    """The ``budget`` highest-scored heads overall, with the best head of every layer always kept."""
    num_heads = len(scores[0])
    kept = {(layer, max(range(num_heads), key=lambda h: row[h])) for layer, row in enumerate(scores)}
    ranked = sorted(((s, layer, h) for layer, row in enumerate(scores) for h, s in enumerate(row)), reverse=True)
    for _, layer, h in ranked:
        if len(kept) >= budget:
            break
        kept.add((layer, h))
    return HeadConfig(tuple(tuple(h for (lay, h) in kept if lay == layer) for layer in range(len(scores))), num_heads)

"""Shared head-selection helpers: how many heads a fraction means, keeping the best-scored ones, and the
one-shot importance scores that several strategies read (computed once per study, kept in its cache)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from headsearch.analysis.head_scores import gradient_importance
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


def split_heads(total: int, shares: Sequence[float], num_heads: int) -> list[int]:
    """Heads per layer for ``total`` heads split in proportion to ``shares`` (one per layer), each layer
    between 1 and ``num_heads``: every layer gets one, then each further head goes to the layer of highest
    ``share / heads given so far`` that still has room (the highest-averages method; ties to the layer with
    fewer heads, then the first)."""
    layers = len(shares)
    if not layers <= total <= layers * num_heads:
        raise ValueError(f"total must be between {layers} and {layers * num_heads} heads. Got {total}.")
    if any(s < 0 for s in shares):
        raise ValueError(f"shares must be >= 0. Got {list(shares)}.")
    weights = list(shares) if sum(shares) > 0 else [1.0] * layers  # all zero: an even split
    counts = [1] * layers
    for _ in range(total - layers):
        room = [i for i in range(layers) if counts[i] < num_heads]
        counts[max(room, key=lambda i: (weights[i] / counts[i], -counts[i], -i))] += 1
    return counts


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


def keep_per_layer(scores: torch.Tensor, counts: Sequence[int]) -> HeadConfig:
    """Each layer's ``counts[layer]`` highest-scored heads (``scores``: ``[layers, heads]``)."""
    kept = tuple(tuple(sorted(scores[layer].argsort(descending=True)[:k].tolist())) for layer, k in enumerate(counts))
    return HeadConfig(kept, scores.shape[1])

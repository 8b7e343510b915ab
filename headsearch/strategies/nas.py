"""Baseline: NAS-style search over the number of heads per layer, heads taken by importance.

The driver's sampler (NSGA-II by default) proposes ``heads_layer_i`` for every layer; each layer keeps
its ``heads_layer_i`` most important heads (Michel et al. gradient importance on the scoring split,
computed once per study). The architecture search is over per-layer counts only, as in NAS over
head numbers; which heads is delegated to importance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headsearch.heads import HeadConfig
from headsearch.strategies._budget import one_shot_importance
from headsearch.strategies.base import Candidate, Strategy, StudyContext


class NasStrategy(Strategy):
    name = "nas"
    search_space = "nas.yaml"

    def prepare(self, context: StudyContext) -> None:
        one_shot_importance(context)

    def propose(self, params: Mapping[str, Any], context: StudyContext) -> Candidate:
        scores = one_shot_importance(context)
        counts = [int(params[f"heads_layer_{layer}"]) for layer in range(context.num_layers)]
        kept = tuple(tuple(sorted(scores[layer].argsort(descending=True)[:k].tolist())) for layer, k in enumerate(counts))
        return Candidate(HeadConfig(kept, context.num_heads), f"per-layer counts {counts}")

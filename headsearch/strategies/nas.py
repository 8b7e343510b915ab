"""Baseline: NAS-style search over how many heads each layer keeps, heads taken by importance.

The driver's sampler (NSGA-II by default) proposes a total ``budget`` (a fraction of all heads) and a weight
``share_layer_i`` per layer; the budget is split across layers in proportion to the weights
(``split_heads``), and each layer keeps its most important heads (Michel et al. gradient importance on the
scoring split, computed once per study). The search is over per-layer counts only, as NAS over head
numbers; which heads is delegated to importance.

Why a total and a split rather than one count per layer: counts drawn independently per layer add up to
about half of the heads in nearly every draw (a sum of uniforms), so NSGA-II's first generation never
reached the cheap end of the front, where most of the hypervolume lies. With the total drawn directly,
the first generation covers every budget (``benchmarks/nas_search.py`` compares the two).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headsearch.heads import HeadConfig, heads_for_budget, split_heads
from headsearch.strategies.base import Candidate, Strategy, StudyContext


class NasStrategy(Strategy):
    name = "nas"
    search_space = "nas.yaml"

    def prepare(self, context: StudyContext) -> None:
        context.importance()

    def propose(self, params: Mapping[str, Any], context: StudyContext) -> Candidate:
        params = self.with_defaults(params)
        total = heads_for_budget(params["budget"], context.num_layers, context.num_heads)
        shares = [float(params.get(f"share_layer_{layer}", 1.0)) for layer in range(context.num_layers)]
        counts = split_heads(total, shares, context.num_heads)
        return Candidate(HeadConfig.top_per_layer(context.importance(), counts),
                         f"{total} heads, per layer {counts}")


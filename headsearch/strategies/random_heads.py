"""Baseline: a random set of heads at a sampled budget (at least one head per layer)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from headsearch.heads import HeadConfig, heads_for_budget
from headsearch.strategies.base import Candidate, Strategy, StudyContext


class RandomStrategy(Strategy):
    name = "random"
    search_space = "random.yaml"

    def propose(self, params: Mapping[str, Any], context: StudyContext) -> Candidate:
        params = self.with_defaults(params)
        total = heads_for_budget(params["budget"], context.num_layers, context.num_heads)
        rng = random.Random(params["seed"])
        scores = [[rng.random() for _ in range(context.num_heads)] for _ in range(context.num_layers)]
        return Candidate(HeadConfig.top(scores, total), f"{total} random heads (seed {params['seed']})")

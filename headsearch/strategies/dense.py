"""Baseline: keep every head. One trial; the reference every front is compared with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headsearch.heads import HeadConfig
from headsearch.strategies.base import Candidate, Strategy, StudyContext


class DenseStrategy(Strategy):
    name = "dense"
    search_space = "dense.yaml"

    def propose(self, params: Mapping[str, Any], context: StudyContext) -> Candidate:
        return Candidate(HeadConfig.dense(context.num_layers, context.num_heads), "all heads")

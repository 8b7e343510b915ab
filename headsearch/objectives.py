"""Objectives of a pruned model: accuracy, FLOPs, measured latency and speedup, parameters.

Directions of every objective are declared here, once. Latency and speedup are measured on the model
passed in, which must be the structurally pruned one (masking is not speed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from headsearch.cost import HardwareProfile, count_flops, count_params, measure_speedup
from headsearch.data.text import TextDataset
from headsearch.heads import HeadConfig
from headsearch.models.classifier import HeadedClassifier
from headsearch.models.text_classifier import TextClassifier
from headsearch.models.training import accuracy

DIRECTIONS = {
    "accuracy": "maximize",
    "flops": "minimize",
    "latency_ms": "minimize",
    "speedup": "maximize",
    "params": "minimize",
}


@dataclass(frozen=True)
class Objectives:
    accuracy: float
    flops: int
    flops_ratio: float
    params: int
    latency_ms: float
    dense_latency_ms: float
    speedup: float
    heads_kept: int
    fraction_kept: float
    eval_split: str

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(pruned: TextClassifier, dense: HeadedClassifier, data: TextDataset, profile: HardwareProfile, *,
             repeats: int = 11) -> Objectives:
    """Accuracy of ``pruned`` on ``data``; its analytic cost; its speedup over ``dense`` measured interleaved."""
    spec, config = pruned.model.spec, pruned.model.head_config
    flops = count_flops(spec, config, profile.seq_len).total
    dense_flops = count_flops(spec, HeadConfig.dense(spec.num_layers, spec.num_heads), profile.seq_len).total
    timing = measure_speedup(dense, pruned.model, profile, repeats=repeats)
    return Objectives(
        accuracy=accuracy(pruned, data),
        flops=flops,
        flops_ratio=flops / dense_flops,
        params=count_params(spec, config),
        latency_ms=timing.pruned.median_ms,
        dense_latency_ms=timing.dense.median_ms,
        speedup=timing.speedup,
        heads_kept=config.total_kept,
        fraction_kept=config.fraction_kept,
        eval_split=data.name,
    )

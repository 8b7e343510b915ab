"""Objectives of a pruned model: accuracy, FLOPs, measured latency and speedup, parameters.

Directions of every objective are declared here, once. Latency and speedup are measured on the
structurally pruned model, never on a masked one (masking is not speed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from headsearch.cost import HardwareProfile, count_flops, count_params, measure_speedup
from headsearch.data.text import TextDataset
from headsearch.heads import HeadConfig
from headsearch.models.classifier import HeadedClassifier
from headsearch.models.encoded import EncodedSplit
from headsearch.models.text_classifier import TextClassifier
from headsearch.strategies.base import Candidate

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


class Evaluator:
    """Scores candidates against one dense model on one split and hardware profile.

    The split is tokenised once; evaluations are memoised by HeadConfig (a study proposes the same
    configuration many times); latency is the pruned model's, measured interleaved with the dense one.
    """

    def __init__(self, dense: TextClassifier, data: TextDataset, profile: HardwareProfile, *, repeats: int = 11,
                 batch_size: int = 64):
        self.dense = dense
        self.data = data
        self.profile = profile
        self.repeats = repeats
        self._split = EncodedSplit(dense, data, batch_size=batch_size)
        spec = dense.model.spec
        self._dense_flops = count_flops(spec, HeadConfig.dense(spec.num_layers, spec.num_heads), profile.seq_len).total
        self._memo: dict[HeadConfig, Objectives] = {}

    def accuracy(self, model: HeadedClassifier) -> float:
        return self._split.accuracy(model)

    def evaluate(self, config: HeadConfig) -> Objectives:
        """Objectives of the dense model structurally pruned to ``config`` (memoised)."""
        if config not in self._memo:
            self._memo[config] = self.evaluate_model(self.dense.model.prune(config))
        return self._memo[config]

    def evaluate_candidate(self, candidate: Candidate) -> Objectives:
        """Objectives of a candidate: its own model (sliced to its head_config) when it has one, else ``evaluate``."""
        if candidate.model is not None:
            model = candidate.model.model
            if model.head_config != candidate.head_config:
                model = model.prune(candidate.head_config)  # raises if the model lacks some of the heads
            return self.evaluate_model(model)
        return self.evaluate(candidate.head_config)

    def remember(self, config: HeadConfig, objectives: Objectives) -> None:
        """Reuse objectives measured earlier (a resumed study's completed trials)."""
        self._memo.setdefault(config, objectives)

    def evaluate_model(self, model: HeadedClassifier) -> Objectives:
        """Objectives of an already pruned model (for example one reloaded from an export)."""
        spec, config = model.spec, model.head_config
        flops = count_flops(spec, config, self.profile.seq_len).total
        timing = measure_speedup(self.dense.model, model, self.profile, repeats=self.repeats)
        return Objectives(
            accuracy=self.accuracy(model),
            flops=flops,
            flops_ratio=flops / self._dense_flops,
            params=count_params(spec, config),
            latency_ms=timing.pruned.median_ms,
            dense_latency_ms=timing.dense.median_ms,
            speedup=timing.speedup,
            heads_kept=config.total_kept,
            fraction_kept=config.fraction_kept,
            eval_split=self.data.name,
        )

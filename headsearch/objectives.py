"""Objectives of a pruned model: accuracy, FLOPs, measured latency and speedup, parameters.

Their names and directions are declared once, in ``headsearch.core``. Latency and speedup are measured on the
structurally pruned model, never on a masked one (masking is not speed). A routed model (per-input
budgets) is measured through its runtime, which computes only each input's chosen heads: FLOPs are the
mean over the split's examples and latency is timed on the split's own rows (padded to the profile's
sequence length), since its cost depends on the input.

A pruned model's accuracy is scored in rungs of rows (``Rungs.row_levels``): after each share of the split the
driver's ``report`` may stop the candidate (``StoppedEarly``) before more rows are scored or its latency is
measured. Where the time goes is counted in ``spent``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from headsearch.core import Candidate
from headsearch.cost import HardwareProfile, Speedup, count_flops, count_params, measure_speedup
from headsearch.cost.flops import mean_flops
from headsearch.cost.latency_table import LatencyTable
from headsearch.data.text import TextDataset
from headsearch.heads import HeadConfig
from headsearch.models.encoded import EncodedSplit
from headsearch.models.headed import HeadedModel
from headsearch.models.routing import router_flops
from headsearch.models.text_classifier import TextClassifier

# a candidate's accuracy on the first ``rows`` rows, and its FLOPs ratio; may raise to stop it there
RowsReport = Callable[[int, float, float], None]


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
    per_input: bool = False  # a routed model: heads_kept and fraction_kept are means over the inputs
    latency_source: str = "measured"  # or "table": latency_ms and dense_latency_ms predicted by a LatencyTable
    checked_latency_ratio: float | None = None  # table: the ratio pruned/dense measured as well, on sampled candidates

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Spent:
    """What an evaluator has spent so far: seconds scoring accuracy and measuring latency, rows scored."""

    scoring_s: float = 0.0
    latency_s: float = 0.0
    rows: int = 0

    def since(self, before: Spent) -> dict[str, float]:
        return {"scoring_s": round(self.scoring_s - before.scoring_s, 3),
                "latency_s": round(self.latency_s - before.latency_s, 3), "rows_scored": self.rows - before.rows}


class Evaluator:
    """Scores candidates against one dense model on one split and hardware profile.

    The split is tokenised once; evaluations are memoised by HeadConfig (a study proposes the same
    configuration many times), and so are the row segments a stopped candidate was scored on; latency is the
    pruned model's, measured interleaved with the dense one once per layout (``HeadedModel.layout``: heads
    kept per layer, which heads do not change the shapes run), or with a ``table`` predicted from it, every
    ``check_every``-th configuration measured as well. ``row_levels``: the row counts a candidate's accuracy
    is reported at (``seed`` orders the rows).
    """

    def __init__(self, dense: TextClassifier, data: TextDataset, profile: HardwareProfile, *, repeats: int = 11,
                 batch_size: int = 64, table: LatencyTable | None = None, check_every: int = 5,
                 row_levels: tuple[int, ...] = (), seed: int = 0):
        self.dense = dense
        self.data = data
        self.profile = profile
        self.repeats = repeats
        self.table, self.check_every, self._predicted = table, check_every, 0
        self._split = EncodedSplit(dense, data, batch_size=batch_size, seed=seed)
        self.levels = tuple(row_levels)
        shape = dense.model.shape
        self._dense_config = HeadConfig.dense(shape.num_layers, shape.num_heads)
        self._dense_flops = count_flops(shape, self._dense_config, profile.seq_len).total
        self._memo: dict[HeadConfig, Objectives] = {}
        self._segments: dict[HeadConfig, list[tuple[int, int]]] = {}  # (rows, correct) per segment scored
        self._timings: dict[tuple, Speedup] = {}  # by HeadedModel.layout: latency is priced once per layout
        self.spent = Spent()

    def evaluate(self, config: HeadConfig, report: RowsReport | None = None) -> Objectives:
        """Objectives of the dense model structurally pruned to ``config`` (memoised; a configuration proposed
        again after it was stopped is reported its memoised segments again, and scored on from there)."""
        if config not in self._memo:
            self._memo[config] = self.evaluate_model(self.dense.model.prune(config), report, memo=True)
            self._segments.pop(config, None)
        return self._memo[config]

    def evaluate_candidate(self, candidate: Candidate, report: RowsReport | None = None) -> Objectives:
        """Objectives of a candidate: its own model (sliced to its head_config) when it has one, else ``evaluate``.
        ``report``: told the accuracy at each row rung (not for a routed model, whose cost is per input)."""
        if candidate.model is not None and candidate.model.router is not None:
            return self.evaluate_routed(candidate.model)
        if candidate.model is not None:
            model = candidate.model.model
            if model.head_config != candidate.head_config:
                model = model.prune(candidate.head_config)  # raises if the model lacks some of the heads
            return self.evaluate_model(model, report)
        return self.evaluate(candidate.head_config, report)

    def _scored(self, model: HeadedModel, report: RowsReport | None, *, memo: bool) -> float:
        """Accuracy of ``model`` on every row, segment by segment (``EncodedSplit.segments``), ``report`` told
        after each segment but the last. ``memo``: keep the segments scored by the model's head configuration."""
        config = model.head_config
        done = self._segments.setdefault(config, []) if memo else []
        fresh = self._split.counts(model, self.levels, start=len(done))
        flops_ratio = count_flops(model.shape, config, self.profile.seq_len).total / self._dense_flops
        rows = correct = 0
        for k in range(len(self.levels) + 1):
            if k == len(done):
                start = time.perf_counter()
                done.append(next(fresh))
                self.spent.scoring_s += time.perf_counter() - start
                self.spent.rows += done[k][0]
            rows, correct = rows + done[k][0], correct + done[k][1]
            if report is not None and k < len(self.levels):
                report(rows, correct / rows, flops_ratio)
        return correct / rows

    def evaluate_classifier(self, clf: TextClassifier) -> Objectives:
        """Objectives of a classifier as it stands, pruned or routed (for example one reloaded from an export)."""
        return self.evaluate_routed(clf) if clf.router is not None else self.evaluate_model(clf.model)

    def cost_ratio(self, cost: HeadConfig | float, *, latency: bool) -> float:
        """A trial's cost while it trains (``StudyContext.report_progress``), relative to dense: a head
        configuration's FLOPs ratio, or its latency ratio (``latency``: measured on the dense model pruned to
        it, as the study measures, memoised; or predicted by the table); a number (a routed model's mean
        FLOPs ratio) is taken as it is."""
        if not isinstance(cost, HeadConfig):
            return float(cost)
        if not latency:
            return count_flops(self.dense.model.shape, cost, self.profile.seq_len).total / self._dense_flops
        if cost in self._memo:
            known = self._memo[cost]
            return known.latency_ms / known.dense_latency_ms
        if self.table is not None:
            return self.table.predict(cost) / self.table.predict(self._dense_config)
        timing = self._timing(cost, lambda: self.dense.model.prune(cost))
        return timing.pruned.median_ms / timing.dense.median_ms

    def _timing(self, config: HeadConfig, pruned: Callable[[], HeadedModel]) -> Speedup:
        """The dense model and ``pruned()`` (the dense model's layout pruned to ``config``) timed interleaved,
        once per layout (``HeadedModel.layout``): equal layouts run the same shapes, whichever heads."""
        layout = self.dense.model.layout(config)
        if layout not in self._timings:
            self._timings[layout] = self._measure(self.dense.model, pruned())
        return self._timings[layout]

    def _measure(self, dense: HeadedModel, pruned: HeadedModel | torch.nn.Module, **kwargs) -> Speedup:
        start = time.perf_counter()
        try:
            return measure_speedup(dense, pruned, self.profile, repeats=self.repeats, **kwargs)
        finally:
            self.spent.latency_s += time.perf_counter() - start

    def remember(self, config: HeadConfig, objectives: Objectives) -> None:
        """Reuse objectives measured earlier (a resumed study's completed trials)."""
        self._memo.setdefault(config, objectives)

    def evaluate_routed(self, clf: TextClassifier) -> Objectives:
        """Objectives of a routed model: accuracy and mean FLOPs per example over the split, latency
        timed on the split's rows, interleaved with the dense model on the same rows."""
        shape, router = clf.model.shape, clf.router
        start = time.perf_counter()
        with router.tracing() as trace:
            accuracy = self._split.accuracy(clf.runtime)
        self.spent.scoring_s += time.perf_counter() - start
        self.spent.rows += len(self.data)
        counts = trace.kept().sum(-1)  # [examples, layers]
        flops = mean_flops(shape, counts.tolist(), self.profile.seq_len) + router_flops(router.spec, self.profile.seq_len)
        timing = self._measure(self.dense.model, clf.runtime, inputs=self._timing_batches(clf))
        heads = float(counts.sum(-1).float().mean())
        total = shape.num_layers * shape.num_heads
        return Objectives(
            accuracy=accuracy,
            flops=round(flops),
            flops_ratio=flops / self._dense_flops,
            params=count_params(clf.model) + count_params(router),
            latency_ms=timing.pruned.median_ms,
            dense_latency_ms=timing.dense.median_ms,
            speedup=timing.speedup,
            heads_kept=round(heads),
            fraction_kept=heads / total,
            eval_split=self.data.name,
            per_input=True,
        )

    def _timing_batches(self, clf: TextClassifier, batches: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The split's first rows in batches of the profile's size, padded to its sequence length."""
        size, seq = self.profile.batch_size, self.profile.seq_len
        rows = min(len(self.data), max(size * batches, 32))
        out = []
        for start in range(0, rows, size):
            texts, pairs = self.data.rows(range(start, min(start + size, rows)))
            ids, mask = clf.tokenizer.encode(texts, min(clf.max_length, seq), pairs)
            pad = seq - ids.shape[1]
            out.append((torch.nn.functional.pad(ids, (0, pad)), torch.nn.functional.pad(mask, (0, pad))))
        return out

    def evaluate_model(self, model: HeadedModel, report: RowsReport | None = None, *, memo: bool = False) -> Objectives:
        """Objectives of an already pruned model (for example one reloaded from an export); accuracy first, in
        rungs told to ``report``, so that a stopped candidate's latency is never measured."""
        config = model.head_config
        accuracy = self._scored(model, report, memo=memo)
        flops = count_flops(model.shape, config, self.profile.seq_len).total
        checked = None
        if self.table is None:
            timing = self._timing(config, lambda: model)
            latency, dense_latency = timing.pruned.median_ms, timing.dense.median_ms
        else:
            latency, dense_latency = self.table.predict(config), self.table.predict(self._dense_config)
            if self._predicted % self.check_every == 0:  # a sample of candidates: how far the table is off
                timing = self._measure(self.dense.model, model)
                checked = timing.pruned.median_ms / timing.dense.median_ms
            self._predicted += 1
        return Objectives(
            accuracy=accuracy,
            flops=flops,
            flops_ratio=flops / self._dense_flops,
            params=count_params(model),
            latency_ms=latency,
            dense_latency_ms=dense_latency,
            speedup=dense_latency / latency,
            heads_kept=config.total_kept,
            fraction_kept=config.fraction_kept,
            eval_split=self.data.name,
            latency_source="measured" if self.table is None else "table",
            checked_latency_ratio=checked,
        )

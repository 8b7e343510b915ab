"""A latency table per (layer, heads kept), measured once per hardware profile, that predicts the latency of
any head configuration without timing it.

Each layer's cost depends on how many heads it keeps, not which (heads have one shape), so a layer is
timed with ``k`` heads for every ``k`` in ``0..H`` (a grid of at most ``MAX_GRID`` counts for wider
layers): the user's transformers layer cut to its first ``k`` heads (``TransformersClassifier.layer_cut``),
called with what the family's own layer loop passes it in a dense pass of the profile's shape (states,
masks, rotary tables: ``layer_inputs``). Attention's work is linear in ``k`` (projections, score and value
products), so each layer's times for ``k >= 1`` are fitted by least squares with ``a + b k``, which averages
the timing noise across the grid; ``k = 0`` (no attention at all) keeps its own figure. The rest of the
forward pass (embeddings, masks, pooling, classifier, per-call overheads) is the dense model's measured
time minus its layers' entries. Every entry and the dense model are timed round-robin, repeat after repeat,
so drift of the machine hits all alike; each figure is a median. Under grouped-query attention searched by
query head the table counts query heads, not which key/value groups survive (the first ``k`` are timed).

In a runtime other than eager (``compile``, ``onnxruntime``: ``cost.runtime``) a layer cannot be timed alone, so
whole models are: every layer cut to ``k`` heads for ``k`` on a grid of at most ``WHOLE_GRID`` counts, plus two
mixed configurations (every other layer empty; random counts), each exported or compiled once. Their medians
are fitted by least squares with ``rest + n_empty * e + b * heads_kept`` (layers alike: one cost per head
``b`` and one step ``e`` for dropping a layer's attention altogether), and the table holds that fit:
``a + b k`` per layer with ``a = -e`` and ``0`` for an empty layer, ``rest_ms`` the rest.

Prediction error is checked on a sample of a study's trials against the latency measured interleaved with
the dense model (``hardware.latency: table``; see the README for the figures).
"""

from __future__ import annotations

import functools
import random
import statistics
from dataclasses import asdict, dataclass

import numpy as np
import torch

from headsearch.cost.latency import HardwareProfile, call_timer, interleaved, random_inputs
from headsearch.cost.runtime import runnable
from headsearch.errors import ModelError
from headsearch.heads import HeadConfig
from headsearch.models.hf.model import TransformersClassifier

MAX_GRID = 13  # head counts timed per layer at most
WHOLE_GRID = 7  # uniform head counts timed as whole models (other runtimes)


@dataclass(frozen=True)
class LatencyTable:
    """``layer_ms[l][i]``: layer ``l`` with ``grid[i]`` heads (fitted, see the module docstring);
    ``rest_ms``: everything else in a forward pass; ``profile``: where it was measured."""

    profile: dict
    num_heads: int
    grid: tuple[int, ...]
    layer_ms: tuple[tuple[float, ...], ...]
    rest_ms: float

    def predict(self, config: HeadConfig) -> float:
        """Predicted milliseconds of one forward pass of a batch of the model pruned to ``config``."""
        if config.num_layers != len(self.layer_ms) or config.num_heads != self.num_heads:
            raise ModelError(f"The latency table is for {len(self.layer_ms)} layers x {self.num_heads} heads; the "
                             f"configuration has {config.num_layers} x {config.num_heads}.")
        return self.rest_ms + sum(self._layer(layer, k) for layer, k in enumerate(config.counts))

    def _layer(self, layer: int, k: int) -> float:
        row, grid = self.layer_ms[layer], self.grid
        if k in grid:
            return row[grid.index(k)]
        upper = next(i for i, g in enumerate(grid) if g > k)  # linear between the grid's neighbours
        lo, hi = grid[upper - 1], grid[upper]
        return row[upper - 1] + (row[upper] - row[upper - 1]) * (k - lo) / (hi - lo)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LatencyTable:
        return cls(profile=dict(data["profile"]), num_heads=int(data["num_heads"]), grid=tuple(data["grid"]),
                   layer_ms=tuple(tuple(r) for r in data["layer_ms"]), rest_ms=float(data["rest_ms"]))


def head_grid(num_heads: int) -> tuple[int, ...]:
    if num_heads + 1 <= MAX_GRID:
        return tuple(range(num_heads + 1))
    return tuple(sorted({round(i * num_heads / (MAX_GRID - 1)) for i in range(MAX_GRID)}))


def measure_table(model: TransformersClassifier, profile: HardwareProfile, *, repeats: int = 7, warmup: int = 3,
                  min_run_s: float = 0.05) -> LatencyTable:
    """Time every (layer, heads kept) of ``model`` (a dense one: every layer keeps all its heads) on ``profile``
    (eager), or fit whole models' times (other runtimes; see the module docstring)."""
    if model.head_config != HeadConfig.dense(model.num_layers, model.num_heads):
        raise ModelError("A latency table is measured on the dense model; this one is already pruned.")
    model = model.eval().to(profile.device)
    if profile.runtime != "eager":
        return _whole_model_table(model, profile, repeats=repeats, warmup=warmup, min_run_s=min_run_s)
    ids, mask = random_inputs(model, profile)
    with torch.inference_mode():
        inputs = model.layer_inputs(ids, mask)
    grid = head_grid(model.num_heads)
    timers = {("dense", 0): call_timer(functools.partial(model, ids, mask), profile)}
    for layer, (args, kwargs) in enumerate(inputs):
        for k in grid:
            cut = model.layer_cut(layer, tuple(range(k))).eval()
            timers[(layer, k)] = call_timer(functools.partial(cut, *args, **kwargs), profile)
    median = _medians(interleaved(timers, repeats=repeats, warmup=warmup, min_run_s=min_run_s))
    layer_ms = tuple(_fit(grid, [median[(layer, k)] for k in grid]) for layer in range(model.num_layers))
    rest = median[("dense", 0)] - sum(row[-1] for row in layer_ms)
    return LatencyTable(profile.to_dict(), model.num_heads, grid, layer_ms, rest)


def _whole_model_table(model: TransformersClassifier, profile: HardwareProfile, *, repeats: int, warmup: int,
                       min_run_s: float) -> LatencyTable:
    L, H = model.num_layers, model.num_heads
    rng = random.Random(0)
    configs = [HeadConfig(tuple(tuple(range(k)) for _ in range(L)), H) for k in sorted({round(i * H / (WHOLE_GRID - 1))
                                                                                      for i in range(WHOLE_GRID)})]
    configs.append(HeadConfig(tuple(() if i % 2 == 0 else tuple(range(H)) for i in range(L)), H))
    configs.append(HeadConfig(tuple(tuple(range(rng.randint(0, H))) for _ in range(L)), H))
    ids, mask = random_inputs(model, profile)
    timers = {}
    for config in configs:
        run = runnable(model.prune(config).eval(), profile.runtime, device=profile.device, threads=profile.threads)
        timers[config] = call_timer(functools.partial(run, ids, mask), profile)
    median = _medians(interleaved(timers, repeats=repeats, warmup=warmup, min_run_s=min_run_s))
    rows = [(1.0, float(c.counts.count(0)), float(sum(c.counts))) for c in configs]
    (rest, step, per_head), *_ = np.linalg.lstsq(np.array(rows), np.array([median[c] for c in configs]), rcond=None)
    grid = head_grid(H)
    row = tuple(0.0 if k == 0 else float(-step + per_head * k) for k in grid)
    return LatencyTable(profile.to_dict(), H, grid, tuple(row for _ in range(L)), float(rest + L * step))


def _medians(samples: dict) -> dict:
    return {key: statistics.median(v) for key, v in samples.items()}


def _fit(grid: tuple[int, ...], times: list[float]) -> tuple[float, ...]:
    """``times`` with the ``k >= 1`` entries replaced by their least-squares line ``a + b k``."""
    xs, ys = [k for k in grid if k >= 1], [t for k, t in zip(grid, times, strict=True) if k >= 1]
    if len(xs) < 2:
        return tuple(times)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return tuple(t if k == 0 else my + slope * (k - mx) for k, t in zip(grid, times, strict=True))

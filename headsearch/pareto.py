"""Pareto fronts of trials: non-dominated sets, hypervolume and the knee.

Non-domination and hypervolume come from ``moocore`` (exact hypervolume; the same values as Optuna's private
``optuna._hypervolume`` on 2,000 random fronts, duplicates kept as Optuna keeps them). Costs are normalised
against dense: ``flops_ratio`` and ``latency_ratio`` (1.0 = dense). Hypervolumes are computed over
(accuracy, flops_ratio) and (accuracy, flops_ratio, latency_ratio), minimising ``1 - accuracy`` and
the ratios, with the reference point 1.0 on every axis: zero accuracy at dense cost. A point slower or
costlier than dense adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import moocore
import numpy as np

from headsearch.analysis.knee import find_knee
from headsearch.errors import HeadsearchError


@dataclass(frozen=True)
class Point:
    strategy: str
    trial: int
    accuracy: float
    flops_ratio: float
    latency_ratio: float
    objectives: dict[str, Any] = field(default_factory=dict, compare=False)
    head_config: dict[str, Any] = field(default_factory=dict, compare=False)
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    model_dir: str | None = field(default=None, compare=False)  # the trial's own weights, relative to the run folder
    info: dict[str, Any] = field(default_factory=dict, compare=False)  # what the strategy said of the trial

    def losses(self, three: bool = False) -> list[float]:
        base = [1.0 - self.accuracy, self.flops_ratio]
        return [*base, self.latency_ratio] if three else base


def non_dominated(points: Sequence[Point], *, three: bool = False, cost: str = "flops_ratio") -> list[Point]:
    """The points no other point beats on every objective (accuracy and ``cost``, or accuracy, FLOPs and
    latency with ``three``), sorted by that cost."""
    if not points:
        return []
    losses = [p.losses(three) if three else [1.0 - p.accuracy, getattr(p, cost)] for p in points]
    mask = moocore.is_nondominated(np.array(losses, dtype=float), maximise=False, keep_weakly=True)
    return sorted((p for p, keep in zip(points, mask, strict=True) if keep), key=lambda p: (getattr(p, cost), -p.accuracy))


def hypervolume(points: Sequence[Point], *, three: bool = False) -> float:
    """Dominated volume against the reference 1.0 on every minimised axis (see the module docstring)."""
    losses = np.array([p.losses(three) for p in points if all(v < 1.0 for v in p.losses(three))])
    if len(losses) == 0:
        return 0.0
    return float(moocore.hypervolume(losses, ref=np.ones(losses.shape[1])))


def trials_to_reach(points: Sequence[Point], fraction: float = 0.95, *, three: bool = False) -> int | None:
    """Search efficiency: trials spent (counted to the point's trial number, so failed and stopped trials count)
    until the hypervolume of the points so far first reaches ``fraction`` of the final one; None when the
    final hypervolume is 0."""
    ordered = sorted(points, key=lambda p: p.trial)
    final = hypervolume(ordered, three=three)
    if final <= 0.0:
        return None
    return next(p.trial + 1 for i, p in enumerate(ordered)
                if hypervolume(ordered[: i + 1], three=three) >= fraction * final - 1e-12)


def knee(front: Sequence[Point]) -> Point:
    """The knee of the accuracy-vs-FLOPs front (Kneedle, concave increasing); the most accurate point when
    the front has fewer than three points or kneed finds no knee."""
    best = max(front, key=lambda p: p.accuracy)
    by_cost: dict[float, Point] = {}
    for p in sorted(front, key=lambda p: (p.flops_ratio, -p.accuracy, p.strategy, p.trial)):
        by_cost.setdefault(p.flops_ratio, p)  # identical configurations found twice: one point per cost
    points = list(by_cost.values())
    if len(points) < 3:
        return best
    found = find_knee([p.flops_ratio for p in points], [p.accuracy for p in points])
    return best if found.fallback else points[found.index]


@dataclass(frozen=True)
class Pick:
    """A chosen point, and what the user must know about the choice: ``note`` says which points slower than
    dense were left out, or that every candidate was slower (then ``slower`` is True and the point is slower
    than what the user has)."""

    point: Point
    note: str | None = None
    slower: bool = False


def slower_than_dense(p: Point) -> bool:
    """Measured (or table-predicted) latency above dense's, timed interleaved in the same trial."""
    return p.latency_ratio > 1.0


def pick(points: Sequence[Point], rule: str, *, max_accuracy_drop: float | None = None,
         dense_accuracy: float | None = None) -> Pick:
    """Choose one point: ``knee``, ``max-accuracy`` or ``min-flops`` of the combined front, optionally only
    among points within ``max_accuracy_drop`` of dense accuracy. Points slower than dense are never chosen
    while a point at least as fast as dense remains; when none does, the choice says so."""
    if rule not in PICK_RULES:
        raise HeadsearchError(f"Unknown pick rule {rule!r}; choose {', '.join(PICK_RULES)}.")
    candidates = list(points)
    if max_accuracy_drop is not None and dense_accuracy is not None:
        candidates = [p for p in candidates if p.accuracy >= dense_accuracy - max_accuracy_drop]
    if not candidates:
        raise HeadsearchError("No trial satisfies the accuracy constraint; relax --max-accuracy-drop.")
    fast = [p for p in candidates if not slower_than_dense(p)]
    front = non_dominated(fast or candidates)
    if rule == "knee":
        chosen = knee(front)
    elif rule == "max-accuracy":
        chosen = max(front, key=lambda p: (p.accuracy, -p.flops_ratio))
    else:
        chosen = min(front, key=lambda p: (p.flops_ratio, -p.accuracy))
    if not fast:
        return Pick(chosen, f"every candidate is slower than dense on the measured profile; {chosen.strategy} trial "
                            f"{chosen.trial} runs at {chosen.latency_ratio:.3f}x dense latency", slower=True)
    left_out = sum(slower_than_dense(p) for p in non_dominated(candidates))
    note = (f"{left_out} point(s) of the front slower than dense (latency ratio > 1) were not considered"
            if left_out else None)
    return Pick(chosen, note)


PICK_RULES = ("knee", "max-accuracy", "min-flops")

"""Early stopping of trials that train: asynchronous successive halving, multi-objective or on accuracy.

Trials report after each epoch; at rung steps ``grace * eta**k`` (up to ``max_t``) a trial is compared with
the trials that reached the same rung before it and goes on only if it ranks in the top ``1/eta`` of them
(itself included). ``asha`` ranks by accuracy alone (Li et al. 2020), so a cheap trial, whose accuracy is
lower by design, is stopped. ``mo_asha`` (Schmucker et al. 2021, arXiv 2106.12639) ranks by non-dominated
sorting on (accuracy so far, cost), ties inside a front broken by crowding distance (NSGA-II), whose
boundary points are the most accurate and the cheapest: a cheap trial that nothing at the rung dominates
goes on. Where every trial at a rung has the same cost, ``mo_asha`` is ``asha``.

Candidates are also scored in rungs of rows: on a growing share of the search split (``row_fractions``, in a
stratified seeded order), a candidate goes on only while it ranks in the top ``1/row_eta`` at each share (same
rule, cost its FLOPs ratio) or, under ``mo_asha``, nothing at that share dominates it, so most candidates never pay
for a full pass or a latency measurement; a stopped one is on no front.

Pure functions on numbers: the Optuna driver keeps rung records in the study's storage and the Ray driver
in a Ray Tune scheduler, and both decide with ``promote``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Rule = Literal["mo_asha", "asha", "none"]
RULES: tuple[str, ...] = ("mo_asha", "asha", "none")


@dataclass(frozen=True)
class Rungs:
    """Where trials are compared: at epochs ``grace, grace*eta, grace*eta**2, ...`` not beyond ``max_t``, and
    after the first ``f`` of the search split's rows for each ``f`` of ``row_fractions`` (a share of fewer than
    ``min_rows`` rows is no rung: its accuracy is noise), keeping the top ``1/row_eta``."""

    rule: Rule = "mo_asha"
    eta: int = 4
    grace: int = 1
    max_t: int = 100
    row_fractions: tuple[float, ...] = (0.125, 0.25, 0.5)
    row_eta: int = 2
    min_rows: int = 64

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"early stopping rule {self.rule!r} is not known; use one of {', '.join(RULES)}")
        if self.eta < 2 or self.grace < 1 or self.max_t < self.grace:
            raise ValueError(f"early stopping needs eta >= 2, grace >= 1 and max_t >= grace (got eta {self.eta}, "
                             f"grace {self.grace}, max_t {self.max_t})")
        if self.row_eta < 2 or self.min_rows < 1 or any(not 0 < f < 1 for f in self.row_fractions):
            raise ValueError(f"row rungs need row_eta >= 2, min_rows >= 1 and fractions between 0 and 1 (got "
                             f"row_eta {self.row_eta}, min_rows {self.min_rows}, fractions {list(self.row_fractions)})")

    @property
    def levels(self) -> list[int]:
        out, step = [], self.grace
        while step <= self.max_t:
            out.append(step)
            step *= self.eta
        return out

    def due(self, step: int, recorded: set[int]) -> int | None:
        """The rung a report at ``step`` is compared at: the highest level reached and not yet recorded by the
        trial (a trial whose first epochs were skipped, e.g. a cached fit, joins at the rung it is at), or
        None where no comparison is due (also when the rule is ``none``)."""
        if self.rule == "none":
            return None
        reached = [r for r in self.levels if r <= step]
        if not reached or reached[-1] in recorded:
            return None
        return reached[-1]

    def promote(self, point: tuple[float, float], others: Sequence[tuple[float, float]]) -> bool:
        return promote(point, others, eta=self.eta, rule=self.rule)

    def row_levels(self, rows: int) -> tuple[int, ...]:
        """The row counts, of a split of ``rows`` rows, at which a candidate is compared."""
        return tuple(sorted({n for n in (math.ceil(f * rows) for f in self.row_fractions) if self.min_rows <= n < rows}))

    def promote_rows(self, point: tuple[float, float], others: Sequence[tuple[float, float]]) -> bool:
        """At a row rung a candidate also goes on while nothing at the rung dominates it (``mo_asha``): in a short
        study most of a strategy's candidates can be on its front, more than ``1/row_eta`` of them, and each
        one stopped there is a front point lost, where a trial that trains loses only epochs."""
        if self.rule == "mo_asha" and not any(_dominates(o, point) for o in others):
            return True
        return promote(point, others, eta=self.row_eta, rule=self.rule)


def promote(point: tuple[float, float], others: Sequence[tuple[float, float]], *, eta: int, rule: Rule) -> bool:
    """Whether a trial at a rung with ``point = (accuracy, cost)`` goes on, given the ``(accuracy, cost)`` the
    trials that reached the rung before it reported there: whether it ranks among the first
    ``ceil(n / eta)`` of the ``n`` trials at the rung (itself included; ties go its way). The first trial at
    a rung always goes on."""
    if rule == "none" or not others:
        return True
    points = [tuple(point), *(tuple(o) for o in others)]
    quota = math.ceil(len(points) / eta)
    if rule == "asha" or len({cost for _, cost in points}) == 1:
        # the trial ranks before every other trial of lower accuracy: goes on if fewer than `quota` beat it
        return sum(1 for acc, _ in points[1:] if acc > point[0]) < quota
    return 0 in ranking(points)[:quota]


def ranking(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of ``(accuracy, cost)`` points best first: by non-dominated front (accuracy up, cost down),
    inside a front by crowding distance, largest first; the sort is stable, so earlier indices win ties."""
    order: list[int] = []
    for front in fronts(points):
        distance = crowding([points[i] for i in front])
        order += [i for _, i in sorted(zip(distance, front, strict=True), key=lambda di: -di[0])]
    return order


def fronts(points: Sequence[tuple[float, float]]) -> list[list[int]]:
    """Non-dominated sorting: indices of the first front, then of the front left when it is removed, and so on
    (O(n^2) per front; a rung holds tens of trials)."""
    left, out = list(range(len(points))), []
    while left:
        front = [i for i in left if not any(_dominates(points[j], points[i]) for j in left if j != i)]
        out.append(front)
        left = [i for i in left if i not in front]
    return out


def crowding(points: Sequence[tuple[float, float]]) -> list[float]:
    """NSGA-II crowding distance of each point of one front: the extremes of each objective are infinite."""
    n = len(points)
    if n <= 2:
        return [math.inf] * n
    distance = [0.0] * n
    for k in range(2):
        order = sorted(range(n), key=lambda i: points[i][k])
        low, high = points[order[0]][k], points[order[-1]][k]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for before, i, after in zip(order, order[1:], order[2:], strict=False):  # the inner points
            distance[i] += (points[after][k] - points[before][k]) / (high - low)
    return distance


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """``a`` at least as accurate and as cheap as ``b``, and better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])

"""Early stopping's rung records, kept in the study's Optuna storage so that every process running the study's
trials (``headsearch worker``s, Ray workers, a resumed run) compares against one set of rungs.

A trial's report at an epoch rung is its user attribute ``rung:STEP = [accuracy, cost]``, at a row rung (its candidate
scored on the first ROWS rows of the search split) ``rung:rows:ROWS = [accuracy, FLOPs ratio]``; the rule that
decides is ``headsearch.search.early_stopping``. A stopped trial is PRUNED with ``stopped_early`` (its last report)
and counts towards ``n_trials``; ``epochs_reported`` counts the epochs a trial trained (one report each; a fit it
took from the study's cache trained none).

Processes reach a rung at the same time (several workers, Ray trials): each records its point before it reads the
others' and decides. Of two trials that reach a rung together, at least one then compares with the other (the
later read sees the earlier write); had each read first, both could decide without the other, each as the rung's
first comer. What stays is asynchronous successive halving's own order effect: a trial is compared with those
recorded before its decision, so which trials go on depends on when they arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial

from headsearch.heads import HeadConfig
from headsearch.search.early_stopping import Rungs

RUNG_PREFIX = "rung:"
EARLY_STOP_ATTR = "stopped_early"  # {"step", "rung", "accuracy", "cost"} of a trial stopped at a rung
EPOCHS_ATTR = "epochs_reported"  # how many epochs the trial reported: those it trained


class StoppedEarly(Exception):  # noqa: N818 (an outcome, not an error)
    """Raised from a trial's progress report when the rule stops it; the trial runner records it as PRUNED."""

    def __init__(self, report: dict[str, Any]):
        at = f"epoch {report['step']}" if "step" in report else f"{report['rows']} rows"
        super().__init__(f"stopped early at {at} (accuracy {report['accuracy']:.4f}, cost {report['cost']:.3f}: "
                         f"outranked at rung {report['rung']})")
        self.report = report


def row_rung(rows: int) -> str:
    return f"rows:{rows}"


def rung_points(trials: Iterable[FrozenTrial], rung: int | str, *, exclude: int) -> list[tuple[float, float]]:
    """``(accuracy, cost)`` that the trials other than number ``exclude`` reported at ``rung`` (an epoch, or a
    ``row_rung``), in any state (a trial stopped later, finished or failed was still measured there)."""
    key = f"{RUNG_PREFIX}{rung}"
    return [tuple(t.user_attrs[key]) for t in trials if t.number != exclude and key in t.user_attrs]


@dataclass
class TrialRungs:
    """One trial's side of early stopping: ``hook`` is its ``StudyContext.progress_hook``, ``rows`` the evaluator's
    report on rows. It records (with ``set_attr``, the trial's user attributes) how many epochs it reported and,
    at each rung due, the trial's ``(accuracy, cost)``, cost priced by ``price``. It decides by comparing them with
    the other trials' records (``trials``, the study's trials), except at epoch rungs when ``notify`` hands the
    report to whatever decides there (Ray Tune's scheduler). Row rungs are decided here in every driver: they
    come seconds apart, and the point is to stop before the next rows are scored."""

    rungs: Rungs
    number: int
    set_attr: Callable[[str, Any], None]
    price: Callable[[HeadConfig | float], float]
    trials: Callable[[], Iterable[FrozenTrial]]
    notify: Callable[[dict[str, Any]], None] | None = None
    recorded: set[int] = field(default_factory=set)
    epochs: int = 0

    def hook(self, step: int, accuracy: Callable[[], float], cost: Callable[[], HeadConfig | float]) -> None:
        self.epochs += 1
        self.set_attr(EPOCHS_ATTR, self.epochs)
        rung = self.rungs.due(step, self.recorded)
        if rung is None:
            return
        point = (float(accuracy()), float(self.price(cost())))
        self.recorded.add(rung)
        self.set_attr(f"{RUNG_PREFIX}{rung}", list(point))  # before reading the others' (module docstring)
        go_on = self.notify is not None or self.rungs.promote(point, rung_points(self.trials(), rung, exclude=self.number))
        report = {"step": step, "rung": rung, "accuracy": point[0], "cost": point[1]}
        if self.notify is not None:
            self.notify(report)
        if not go_on:
            raise StoppedEarly(report)

    def rows(self, rows: int, accuracy: float, flops_ratio: float) -> None:
        """The candidate's accuracy on the first ``rows`` rows of the search split (a row rung): recorded, and the
        trial stopped (``StoppedEarly``) where it is outranked there. Cost is the FLOPs ratio: latency is measured
        only for candidates scored on every row."""
        rung, point = row_rung(rows), (float(accuracy), float(flops_ratio))
        self.set_attr(f"{RUNG_PREFIX}{rung}", list(point))
        go_on = self.rungs.promote_rows(point, rung_points(self.trials(), rung, exclude=self.number))
        if not go_on:
            raise StoppedEarly({"rows": rows, "rung": rung, "accuracy": point[0], "cost": point[1]})

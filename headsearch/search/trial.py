"""One trial, whichever driver runs it: propose, evaluate, describe the outcome for the storage and MLflow.

The Optuna driver runs trials in its own process; the Ray Tune driver runs them in Ray workers, where a
``TrialRunner`` is rebuilt once per process. Both record the same user attributes on the Optuna trial
and hand the same ``TrialRecord`` to the MLflow logger, so fronts, reports and export read either alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from headsearch.heads import HeadConfig
from headsearch.models.text_classifier import TextClassifier
from headsearch.objectives import Objectives, RowsReport, Spent
from headsearch.search.rungs import EARLY_STOP_ATTR, StoppedEarly, TrialRungs
from headsearch.strategies.base import Candidate, Strategy, StudyContext

HARDWARE_ATTR = "hardware"  # the HardwareProfile the trial's objectives were measured on
TIME_ATTR = "time"  # where the trial's time went: propose_s (analysis, training), scoring_s, latency_s, rows_scored


@dataclass(frozen=True)
class TrialRecord:
    number: int
    params: dict
    objectives: Objectives | None
    head_config: HeadConfig | None
    description: str
    error: str | None
    info: dict = field(default_factory=dict)  # the Candidate's own figures (search-subset accuracy, ...)
    artifacts: dict = field(default_factory=dict)  # the Candidate's files (name -> text or bytes)
    pruned: bool = False  # stopped early at a rung (``headsearch.search.early_stopping``)
    killed: bool = False  # its process was interrupted or died; the driver runs its parameters again
    time: dict = field(default_factory=dict)  # where its time went (``TIME_ATTR``)

    @property
    def status(self) -> str:
        return "killed" if self.killed else "pruned" if self.pruned else "failed" if self.error else "complete"


@dataclass(frozen=True)
class Outcome:
    """A finished trial: ``values`` (one per objective) or None when it failed; ``attrs`` for the Optuna trial."""

    values: list[float] | None
    attrs: dict[str, Any]
    record: TrialRecord

    def write(self, set_attr: Callable[[str, Any], None]) -> None:
        """Record the outcome on its Optuna trial (``set_attr(key, value)``: the trial's or the storage's setter),
        the same for every driver; the trial's state is then told by whoever owns it (the Optuna driver, or the
        Ray searcher from the trial's last report)."""
        for key, value in self.attrs.items():
            set_attr(key, value)


def interrupted_reason(stop: KeyboardInterrupt) -> str:
    """Why a trial stopped by Ctrl-C or SIGTERM failed (MLflow and the Optuna storage say the same)."""
    return f"killed: {stop or 'interrupted'} during the trial"


@dataclass
class TrialRunner:
    """What running a trial needs, wherever it runs. ``evaluate(candidate, report)`` scores a candidate, telling
    ``report`` its accuracy at each row rung; ``spent``: what the evaluator has spent so far. ``save_model(trial_number,
    model)`` stores a candidate's own weights (a recovered model) and returns where, recorded as the trial's
    ``model_dir`` for export."""

    strategy: Strategy
    context: StudyContext
    evaluate: Callable[[Candidate, RowsReport | None], Objectives]
    objectives: Sequence[str]
    on_trial: Callable[[TrialRecord], None] | None = None
    save_model: Callable[[int, TextClassifier], str] | None = None
    # a trial's cost while it trains, for early stopping (``Evaluator.cost_ratio`` as the study prices it)
    price: Callable[[HeadConfig | float], float] = field(default=lambda cost: float("nan"), repr=False)
    spent: Spent = field(default_factory=Spent)

    def run(self, number: int, params: Callable[[], Mapping[str, Any]], rungs: TrialRungs | None = None) -> Outcome:
        """Trial ``number`` with the parameters ``params()`` samples; ``rungs``: its early stopping, at epochs (the
        context's ``progress_hook`` while it runs) and rows. A trial that raises or gives a NaN objective is an
        outcome too (failed, with its reason): the study goes on. Every outcome records where its time went."""
        sampled, config, description, info, artifacts, result, error = {}, None, "", {}, {}, None, None
        attrs: dict[str, Any] = {}
        pruned = False
        spent, started, proposed = Spent(**vars(self.spent)), time.perf_counter(), None
        self.context.progress_hook = None if rungs is None else rungs.hook
        try:
            sampled = dict(params())
            candidate = self.strategy.propose(sampled, self.context)
            proposed = time.perf_counter()
            config, description, info = candidate.head_config, candidate.description, dict(candidate.info)
            artifacts = dict(candidate.artifacts)
            candidate.check_info()
            result = self.evaluate(candidate, None if rungs is None else rungs.rows)
            values = [float(getattr(result, o)) for o in self.objectives]
            if any(math.isnan(v) for v in values):
                raise ValueError(f"objective is NaN: {dict(zip(self.objectives, values, strict=True))}")
            attrs = {"head_config": config.to_dict(), "objectives": result.to_dict(), "description": description}
            if info:
                attrs["info"] = info
            if candidate.model is not None and self.save_model is not None:
                attrs["model_dir"] = self.save_model(number, candidate.model)
        except StoppedEarly as stop:  # outranked at a rung: PRUNED, its last report kept
            attrs, values, result, config, description = {EARLY_STOP_ATTR: stop.report}, None, None, None, str(stop)
            info, pruned = {f"stopped_at_{k}": v for k, v in stop.report.items()}, True
        except Exception as exc:  # a failing trial is data, not the end of the study
            error = f"{type(exc).__name__}: {exc}"
            attrs, values, result = {"fail_reason": error}, None, None
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: logged as killed, then the driver stops
            self.killed(number, sampled, interrupted_reason(stop))
            raise
        finally:
            self.context.progress_hook = None
        proposing = (proposed or time.perf_counter()) - started  # the whole trial, where it ended in its proposal
        took = {"propose_s": round(proposing, 3), **self.spent.since(spent)}
        attrs[TIME_ATTR] = took
        record = TrialRecord(number, sampled, result, config, description, error, info, artifacts, pruned=pruned,
                             time=took)
        if self.on_trial is not None:
            try:
                self.on_trial(record)
            except Exception as exc:  # the tracking server failed: the trial fails with the reason, the study goes on
                error = f"logging the trial failed: {type(exc).__name__}: {exc}"
                attrs, values = {"fail_reason": error, TIME_ATTR: took}, None
                record = TrialRecord(number, sampled, result, config, description, error, info, artifacts, time=took)
        return Outcome(values, attrs, record)

    def killed(self, number: int, params: Mapping[str, Any], reason: str) -> None:
        """Log trial ``number``, killed with its process (found by a later process, or interrupted here)."""
        if self.on_trial is not None:
            self.on_trial(TrialRecord(number, dict(params), None, None, "", reason, killed=True))

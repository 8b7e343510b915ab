"""The data step of a report: per-strategy fronts, hypervolumes and the combined knee (no drawing here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from headsearch.pareto import Pick, Point, hypervolume, non_dominated, pick, trials_to_reach


@dataclass(frozen=True)
class StrategySummary:
    strategy: str
    points: list[Point]
    front: list[Point]
    hypervolume: float
    hypervolume_3d: float
    trials_to_95: int | None  # trials spent until the front's hypervolume (acc x FLOPs) reached 95% of its final value

    @property
    def efficiency(self) -> str:
        """``trials_to_95`` as the tables print it; a one-trial search that says how many masks it scored
        before its answer (A*) adds that."""
        if self.trials_to_95 is None:
            return "-"
        masks = self.points[0].info.get("masks_to_best") if len(self.points) == 1 else None
        return f"{self.trials_to_95}" + (f" ({masks} masks)" if masks is not None else "")


@dataclass(frozen=True)
class TimeSpent:
    """Where one strategy's trials spent their time (the sums of their ``time`` records): ``wall_s`` from each
    trial's start to its end; of it, ``propose_s`` in the strategy (analysis, training), ``scoring_s`` scoring
    accuracy, ``latency_s`` measuring latency. ``rows_scored`` of ``rows_full``: the rows a full pass for every
    trial that reached scoring would have scored."""

    strategy: str
    trials: int
    stopped_at_rows: int
    wall_s: float
    propose_s: float
    scoring_s: float
    latency_s: float
    rows_scored: int
    rows_full: int

    def row(self) -> list[str]:
        share = f"{self.rows_scored / self.rows_full:.0%}" if self.rows_full else "-"
        return [self.strategy, str(self.trials), str(self.stopped_at_rows), f"{self.wall_s:.1f}", f"{self.propose_s:.1f}",
                f"{self.scoring_s:.1f}", f"{self.latency_s:.1f}", share]

    COLUMNS = ("strategy", "trials", "stopped", "wall s", "propose s", "score s", "latency s", "rows")


@dataclass(frozen=True)
class RunSummary:
    strategies: list[StrategySummary]
    combined_front: list[Point]
    combined_hypervolume: float
    knee: Point | None
    dense_accuracy: float
    knee_note: str | None = None  # points slower than dense left out, or the knee is slower than dense
    time_spent: tuple[TimeSpent, ...] = ()


def time_table(summary: RunSummary) -> str:
    """Markdown: where each strategy's time went."""
    lines = ["| " + " | ".join(TimeSpent.COLUMNS) + " |", "|" + "---|" * len(TimeSpent.COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(t.row()) + " |" for t in summary.time_spent])


def summarise(points: Sequence[Point], dense_accuracy: float, order: Sequence[str],
              time_spent: Sequence[TimeSpent] = ()) -> RunSummary:
    per = []
    for name in order:
        mine = [p for p in points if p.strategy == name]
        per.append(StrategySummary(name, mine, non_dominated(mine), hypervolume(mine), hypervolume(mine, three=True),
                                   trials_to_reach(mine, 0.95)))
    front = non_dominated(points)
    chosen: Pick | None = pick(points, "knee") if points else None
    return RunSummary(per, front, hypervolume(points), chosen.point if chosen else None, dense_accuracy,
                      chosen.note if chosen else None, tuple(time_spent))


def markdown_table(summary: RunSummary) -> str:
    lines = [
        "| strategy | trials | front size | HV (acc x FLOPs) | trials to 95% of HV | HV (acc x FLOPs x latency) | "
        "best accuracy | fewest FLOPs within 1 pt of dense |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summary.strategies:
        near = [p for p in s.points if p.accuracy >= summary.dense_accuracy - 0.01]
        best = max((p.accuracy for p in s.points), default=float("nan"))
        fewest = f"{min(p.flops_ratio for p in near):.3f}" if near else "-"
        lines.append(f"| {s.strategy} | {len(s.points)} | {len(s.front)} | {s.hypervolume:.4f} | {s.efficiency} | "
                     f"{s.hypervolume_3d:.4f} | {best:.4f} | {fewest} |")
    return "\n".join(lines)


def front_rows(front: Sequence[Point]) -> list[list[str]]:
    return [[p.strategy, str(p.trial), f"{p.accuracy:.4f}", f"{p.flops_ratio:.3f}", f"{p.latency_ratio:.3f}",
             str(p.objectives.get("heads_kept", "")), _per_layer(p)] for p in front]


def _per_layer(p: Point) -> str:
    if p.objectives.get("per_input"):
        return "per input (mean)"
    return " ".join(str(len(k)) for k in p.head_config.get("kept", []))

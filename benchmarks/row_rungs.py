"""Candidates scored in rungs of rows against the same study scored in full: wall time, rows scored and the
combined front's hypervolume (accuracy x FLOPs; every front point is scored on every row in both).

    python benchmarks/row_rungs.py studies/sst2_minilm_classifier.yaml --out runs/row-rungs --seeds 0 1 2

For each seed, the study runs twice in this process, rungs first then in full (``--no-early-stopping``), each in
its own run folder and storage, so the same sampler and seed propose from the same history until a stop.
``--strategies`` keeps only those (default: the study's scoring-bound ones: dense, importance (one-shot),
nas, random), since row rungs change only how candidates are scored. ``--dense-pass``: also time one dense
pass of the study's model over its search rows (pre-tokenised, as candidates are scored; median of 3) and
print each mode's mean trial cost (scoring + latency) in such passes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from headsearch.models.encoded import EncodedSplit
from headsearch.report import summarise
from headsearch.study import build_context, load_points, load_run, load_time_spent, run_study
from headsearch.study_config import StrategyRun, load_study

ONE_SHOT = {"iterative": {"type": "categorical", "choices": [False]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--strategies", nargs="+", default=["dense", "importance", "nas", "random"])
    parser.add_argument("--rungs-only", action="store_true",
                        help="run with rungs only; compare with the full runs already in --out (their rule does not matter)")
    parser.add_argument("--dense-pass", action="store_true", help="print trial costs in dense passes over the search rows")
    args = parser.parse_args()
    base = load_study(args.study)
    dense_pass = timed_dense_pass(base) if args.dense_pass else None
    kept = [StrategyRun(name=s.name, n_trials=s.n_trials, space=ONE_SHOT if s.name == "importance" else s.space)
            for s in base.strategies if s.name in args.strategies]
    ratios, walls = [], {"rows": [], "full": []}
    for seed in args.seeds:
        figures = {}
        for mode in ("rows", "full"):
            run = args.out / f"seed{seed}-{mode}"
            if mode == "full" and args.rungs_only:
                info = load_run(run)
                figures[mode] = summarise(load_points(run), info["dense"]["accuracy"], info["strategies"]).combined_hypervolume
                walls[mode].append(sum(t.wall_s for t in load_time_spent(run)))
                print(f"seed {seed} full: HV {figures[mode]:.4f} (from {run})", flush=True)
                continue
            config = base.model_copy(update={"seed": seed, "strategies": tuple(kept), "output": run,
                                             "tracking_uri": f"sqlite:///{args.out / 'mlflow.db'}"})
            start = time.perf_counter()
            run = run_study(config, progress=False, echo=lambda *_: None, early_stopping=mode == "rows")
            wall = time.perf_counter() - start
            info = load_run(run)
            summary = summarise(load_points(run), info["dense"]["accuracy"], info["strategies"])
            spent = load_time_spent(run)
            rows, full = sum(t.rows_scored for t in spent), sum(t.rows_full for t in spent)
            stopped = sum(t.stopped_at_rows for t in spent)
            figures[mode] = summary.combined_hypervolume
            walls[mode].append(wall)
            print(f"seed {seed} {mode:>4}: {wall:6.1f} s, HV {summary.combined_hypervolume:.4f}, "
                  f"{stopped} of {sum(t.trials for t in spent)} trials stopped at a row rung, rows scored "
                  f"{rows / full:.0%}, scoring {sum(t.scoring_s for t in spent):.1f} s, latency "
                  f"{sum(t.latency_s for t in spent):.1f} s, proposals {sum(t.propose_s for t in spent):.1f} s", flush=True)
            if dense_pass:
                per_trial = sum(t.scoring_s + t.latency_s for t in spent) / sum(t.trials for t in spent)
                print(f"  {mode}: mean trial cost {per_trial:.1f} s = {per_trial / dense_pass:.2f} dense passes over "
                      f"the search rows ({dense_pass:.1f} s each)", flush=True)
        ratios.append(figures["rows"] / figures["full"])
        print(f"seed {seed}: HV rungs / full {ratios[-1]:.4f}, wall {walls['rows'][-1] / walls['full'][-1]:.2f}x", flush=True)
    spread = f" (min {min(ratios):.4f}, max {max(ratios):.4f})" if len(ratios) > 1 else ""
    print(f"HV rungs / full: mean {statistics.fmean(ratios):.4f}{spread}; wall rungs {statistics.fmean(walls['rows']):.1f} s, "
          f"full {statistics.fmean(walls['full']):.1f} s over {len(args.seeds)} seed(s)")


def timed_dense_pass(config) -> float:
    """Seconds of one dense pass of the study's model over its search rows, pre-tokenised (median of 3)."""
    context, _ = build_context(config)
    split = EncodedSplit(context.dense, context.search)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        split.accuracy(context.dense.model)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()

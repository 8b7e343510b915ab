"""BudgetFormer's learned budget against the known need per input, over seeds (issue 18's first target).

For each task of ``headsearch.testing.DIFFICULTY_TASKS`` (``lookup`` and ``vote``: 1..4 independent
key-answer lookups, one wrong answer to find or a majority to count) and each seed: a 1-layer built-in encoder with
8 heads of dimension 1, trained from scratch dense and as BudgetFormer at the strategy's defaults
(15 epochs, 4,000 rows), measured on 600 held-out rows: Spearman(s, need), mean s and heads run by
need, accuracy against dense.

    python benchmarks/budget_difficulty.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json

import torch

from headsearch.testing import DIFFICULTY_TASKS, difficulty_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(DIFFICULTY_TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--params", default="{}", help="JSON overrides of the strategy's settings")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    params = json.loads(args.params)
    print(f"settings: defaults with {params or 'no overrides'}")
    print("\n| task | seed | Spearman(s, need) | mean s by need 1..4 | heads run by need 1..4 | accuracy | dense | collapse |")
    print("|---|---|---|---|---|---|---|---|")
    for task in args.tasks:
        runs = []
        for seed in args.seeds:
            run = difficulty_run(task, seed, **params)
            runs.append(run)
            print(f"| {task} | {seed} | {run.spearman:.3f} | {list(run.s_by_need)} | {list(run.heads_by_need)} | "
                  f"{run.accuracy:.3f} | {run.dense_accuracy:.3f} | {run.collapse or '-'} |", flush=True)
        above = sum(r.spearman > 0.5 for r in runs)
        rising = sum(r.rises for r in runs)
        close = sum(r.accuracy >= r.dense_accuracy - 0.01 for r in runs)
        print(f"| {task} | all | > 0.5 on {above}/{len(runs)} | rising on {rising}/{len(runs)} | | within 1 point of "
              f"dense (or above) on {close}/{len(runs)} | | |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

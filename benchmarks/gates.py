"""Budget-conditioned gates, static gates and gradient importance at the same budgets, side by side.

For a study's dense model (the run folder's cached model is reused, or trained): one budget-conditioned
checkpoint (with and, with ``--cold``, without the dense warm start) is sliced at each budget, with and
without one epoch of hard-gate adaptation; static gates are trained once per budget; one-shot importance
keeps the same number of heads of the dense model. Every model is structurally pruned; accuracy is
measured on dev and test, and the speedup over dense is the median ratio of interleaved latency
measurements in this process (single thread, batch 1, the study's sequence length).

    python benchmarks/gates.py studies/agnews_builtin.yaml --out runs/agnews_builtin --cold
"""

from __future__ import annotations

import time

from _study import open_study, study_parser

from headsearch.cost import HardwareProfile, measure_speedup
from headsearch.heads import HeadConfig, heads_for_budget
from headsearch.models import accuracy
from headsearch.strategies.budgeted_gates import BudgetedGatesStrategy
from headsearch.strategies.static_gates import StaticGatesStrategy


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3, help="budget-conditioned checkpoint epochs")
    parser.add_argument("--static-max-epochs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="also train the checkpoint without the dense warm start")
    parser.add_argument("--repeats", type=int, default=15, help="latency repeats per model")
    args = parser.parse_args(argv)
    config, context, test = open_study(args)
    dense = context.dense
    L, H = context.num_layers, context.num_heads
    dev = context.search
    profile = HardwareProfile(threads=1, batch_size=1, seq_len=config.hardware.seq_len)
    print(f"model {config.model.source} {L}x{H}; dev {len(dev)}, test {len(test)} rows; gates trained on "
          f"{args.train_rows} train rows; latency: 1 thread, batch 1, {profile.seq_len} tokens, median of {args.repeats}")
    print(f"dense: dev {accuracy(dense, dev):.4f}, test {accuracy(dense, test):.4f}")
    importance = context.importance().tolist()
    common = {"train_rows": args.train_rows}
    methods = [("budget-conditioned", BudgetedGatesStrategy(), {"epochs": args.epochs, **common}),
               ("budget-conditioned + 1 adaptation epoch", BudgetedGatesStrategy(),
                {"epochs": args.epochs, "adapt_epochs": 1, **common})]
    if args.cold:
        methods += [("budget-conditioned, no warm start", BudgetedGatesStrategy(),
                     {"epochs": args.epochs, "warm_start": False, **common})]
    methods += [("static gates", StaticGatesStrategy(), {"max_epochs": args.static_max_epochs, **common})]

    print("\n| budget | method | heads | dev | test | speedup | train s |")
    print("|---|---|---|---|---|---|---|")
    for b in args.budgets:
        rows = []
        for label, strategy, params in methods:
            start = time.monotonic()
            candidate = strategy.propose({"budget": b, **params}, context)
            rows.append((label, candidate.model, time.monotonic() - start))
        imp = HeadConfig.top(importance, heads_for_budget(b, L, H))
        rows.append(("importance (no training)", dense.prune(imp), 0.0))
        for label, clf, seconds in rows:
            speed = measure_speedup(dense.model, clf.model, profile, repeats=args.repeats).speedup
            print(f"| {b:g} | {label} | {clf.model.head_config.total_kept}/{L * H} | {accuracy(clf, dev):.4f} | "
                  f"{accuracy(clf, test):.4f} | {speed:.2f}x | {seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

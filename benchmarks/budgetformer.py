"""BudgetFormer (per-input head budgets) against dense and against static pruning at the same mean head count.

For a study's dense model (the run folder's cached model is reused, or trained): a router is trained
for each ``--targets`` mean budget (warm start; ``--per-layer`` routes at every layer, default once
per input from the embeddings; the search space's defaults otherwise). Each routed model is run
through the runtime that computes only each input's heads: accuracy on dev and test, mean s, mean
heads, mean FLOPs per example at the study's sequence length, and latency at batch 1 and batch 32 on
dev rows padded to that length, interleaved with the dense model in this process (single thread;
speedup = ratio of medians). The static comparison keeps the
same number of heads (the routed mean, rounded) by one-shot gradient importance, structurally pruned,
and by the budget-conditioned gates (``budgeted_gates``, one checkpoint for every budget, trained on
the same rows for its default 3 epochs); the last row of each group is routed latency over the
importance model's latency, the two timed interleaved in one measurement (median of ``--repeats``).

    python benchmarks/budgetformer.py studies/agnews_builtin.yaml --out runs/agnews_builtin
"""

from __future__ import annotations

import time

from _study import open_study, study_parser

from headsearch.cost import HardwareProfile
from headsearch.heads import HeadConfig
from headsearch.models import accuracy
from headsearch.objectives import Evaluator
from headsearch.strategies.budgeted_gates import BudgetedGatesStrategy
from headsearch.strategies.budgetformer import BudgetFormerStrategy, route


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=float, nargs="+", default=[0.25, 0.5], help="target mean budgets")
    parser.add_argument("--per-layer", action="store_true", help="route at every layer (default: once per input)")
    parser.add_argument("--signal", default="tokens", choices=["tokens", "mean"])
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="latency batch sizes")
    parser.add_argument("--repeats", type=int, default=11, help="latency repeats per model")
    args = parser.parse_args(argv)
    config, context, test = open_study(args)
    dense = context.dense
    L, H = context.num_layers, context.num_heads
    dev = context.search
    seq = config.hardware.seq_len
    evaluators = {b: Evaluator(dense, dev, HardwareProfile(threads=1, batch_size=b, seq_len=seq), repeats=args.repeats)
                  for b in args.batches}
    print(f"model {config.model.source} {L}x{H}; dev {len(dev)}, test {len(test)} rows; routers trained on "
          f"{args.train_rows} train rows for {args.epochs} epochs; latency: 1 thread, {seq} tokens, "
          f"median of {args.repeats}, batches {args.batches}")
    print(f"dense: dev {accuracy(dense, dev):.4f}, test {accuracy(dense, test):.4f}")
    importance = context.importance().tolist()
    speed_cols = " | ".join(f"speedup b={b}" for b in args.batches)
    print(f"\n| method | mean s | heads (of {L * H}) | dev | test | FLOPs saved | {speed_cols} | train s |")
    print("|---|---|---|---|---|---|" + "---|" * len(args.batches) + "---|")
    mode = "per layer" if args.per_layer else "once"
    for target in args.targets:
        start = time.monotonic()
        candidate = BudgetFormerStrategy().propose(
            {"target_budget": target, "epochs": args.epochs, "train_rows": args.train_rows,
             "per_layer": args.per_layer, "signal": args.signal}, context)
        seconds = time.monotonic() - start
        routed = candidate.model
        routing = route(routed, dev)
        objectives = {b: e.evaluate_classifier(routed) for b, e in evaluators.items()}
        first = objectives[args.batches[0]]
        speeds = " | ".join(f"{o.speedup:.2f}x" for o in objectives.values())
        heads = routing.kept.sum((1, 2)).float().mean()
        epochs = " ".join(f"{e['mean']:.3f}/{e['multiplier']:+.3f}" for e in candidate.info["budget_epochs"])
        print(f"training batches' mean s / multiplier by epoch (train mode): {epochs}")
        print(f"| BudgetFormer ({mode}, {args.signal}), target {target:g} | {routing.s.mean():.3f} | {heads:.1f} | "
              f"{first.accuracy:.4f} | {accuracy(routed, test):.4f} | {1 - first.flops_ratio:.1%} | {speeds} | "
              f"{seconds:.0f} |", flush=True)
        static = dense.prune(HeadConfig.top(importance, max(L, round(first.heads_kept))))
        static_objectives = {b: e.evaluate_classifier(static) for b, e in evaluators.items()}
        speeds = " | ".join(f"{o.speedup:.2f}x" for o in static_objectives.values())
        print(f"| importance, same heads | - | {static.model.head_config.total_kept} | {accuracy(static, dev):.4f} | "
              f"{accuracy(static, test):.4f} | {1 - static_objectives[args.batches[0]].flops_ratio:.1%} | {speeds} | 0 |",
              flush=True)
        budget = round(first.heads_kept) / (L * H)
        candidate = BudgetedGatesStrategy().propose({"budget": budget, "train_rows": args.train_rows}, context)
        gated = candidate.model.prune(candidate.head_config)  # the checkpoint keeps every head; slice it
        gated_objectives = {b: e.evaluate_classifier(gated) for b, e in evaluators.items()}
        speeds = " | ".join(f"{o.speedup:.2f}x" for o in gated_objectives.values())
        print(f"| budgeted_gates, same heads | - | {gated.model.head_config.total_kept} | {accuracy(gated, dev):.4f} | "
              f"{accuracy(gated, test):.4f} | {1 - gated_objectives[args.batches[0]].flops_ratio:.1%} | {speeds} | - |",
              flush=True)
        # routed against the importance model directly: the two interleaved in one measurement per batch size
        direct = {b: Evaluator(static, dev, HardwareProfile(threads=1, batch_size=b, seq_len=seq), repeats=args.repeats)
                  .evaluate_classifier(routed).speedup for b in args.batches}
        ratios = ", ".join(f"b={b} {1 / speedup:.3f}" for b, speedup in direct.items())
        print(f"| routed / static latency, interleaved: {ratios} | | | | | | " + "| " * len(args.batches) + "|", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

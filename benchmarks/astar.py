"""A* head pruning against iterative importance pruning at the same tolerance, confirmed on held-out data.

For a study's dense model (the run folder's cached model is reused, or trained) the search split is
cut into the A* evaluation subset (``--eval-rows`` rows, the strategy's seed) and the rest. For each
tolerance epsilon and heuristic, A* runs with the given branching, evaluation budget and time limit;
Michel et al. iterative importance pruning (scores on the study's scoring split, 10% of heads per
step) removes heads in its order until subset accuracy first falls below dense - epsilon. Every
result is then re-measured on the structurally pruned model: on the subset, on the held-out rest of
the search split, and on the test split. Last, mask-scoring throughput: the successors of one state
scored batched with prefix reuse vs one mask at a time with full forward passes (median of repeats,
the two ways interleaved).

    python benchmarks/astar.py studies/sst2_minilm.yaml --out runs/sst2_minilm
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from _study import open_study, study_parser

from headsearch.analysis.mask_eval import MaskEvaluator
from headsearch.heads import HeadConfig
from headsearch.models import accuracy
from headsearch.strategies.astar import AStarSettings, astar_prune
from headsearch.strategies.importance import removal_order


def iterative_importance(context, evaluator: MaskEvaluator, order, epsilon: float) -> tuple[HeadConfig, int]:
    """Heads kept when the iterative removal ``order`` is followed until accuracy first breaks the tolerance."""
    L, H = context.num_layers, context.num_heads
    masks = []
    for k in range(len(order) + 1):
        m = torch.ones(L, H)
        for i, h in order[:k]:
            m[i, h] = 0
        masks.append(m)
    scores = evaluator.score(masks)
    threshold = scores[0].accuracy - epsilon
    k = 0
    while k + 1 < len(scores) and scores[k + 1].accuracy >= threshold:
        k += 1
    return HeadConfig.from_mask(masks[k]), len(masks)


def throughput(clf, subset, repeats: int) -> tuple[float, float, int]:
    """Masks per second, batched with prefix reuse vs one at a time, on one state's successors."""
    L, H = clf.model.num_layers, clf.model.num_heads
    rng = random.Random(0)
    parent = torch.ones(L, H)
    for i in range(L):
        for h in rng.sample(range(H), H // 4):
            parent[i, h] = 0
    successors = []
    for i in range(L):
        for h in range(H):
            if parent[i, h] and parent[i].sum() > 1:
                m = parent.clone()
                m[i, h] = 0
                successors.append(m)
    fast = MaskEvaluator(clf, subset)
    slow = MaskEvaluator(clf, subset, reuse_prefix=False, rows_per_pass=1)
    times: dict[str, list[float]] = {"fast": [], "slow": []}
    for r in range(repeats):
        for name in (("fast", "slow") if r % 2 == 0 else ("slow", "fast")):
            ev = fast if name == "fast" else slow
            t = time.perf_counter()
            scores = ev.score(successors, reference=parent) if name == "fast" else [ev.score([m])[0] for m in successors]
            times[name].append(time.perf_counter() - t)
            if name == "fast":
                fast_scores = scores
            else:
                slow_scores = scores
    assert [s.accuracy for s in fast_scores] == [s.accuracy for s in slow_scores]
    n = len(successors)
    return n / statistics.median(times["fast"]), n / statistics.median(times["slow"]), n


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-rows", type=int, default=256)
    parser.add_argument("--search", nargs="+", default=["0.01:ablation:1", "0.01:ablation:0.2", "0.01:importance:0.2",
                                                          "0:ablation:0.2", "0:importance:0.2"],
                        help="A* runs as EPSILON:HEURISTIC:WEIGHT; iterative importance runs once per epsilon")
    parser.add_argument("--branching", type=int, default=8)
    parser.add_argument("--max-masks", type=int, default=1000)
    parser.add_argument("--time-limit", type=float, default=900.0)
    parser.add_argument("--repeats", type=int, default=3, help="throughput repeats")
    args = parser.parse_args(argv)
    config, context, test = open_study(args)
    subset, heldout = context.search.split(args.eval_rows, seed=context.seed)
    evaluator = MaskEvaluator(context.dense, subset)
    L, H = context.num_layers, context.num_heads
    print(f"model {config.model.source} {L}x{H}; A* subset {subset.name} ({len(subset)} rows); held-out rest of "
          f"{context.search.name} ({len(heldout)} rows); test ({len(test)} rows); {args.threads} threads")
    rows = []
    start = time.monotonic()
    order = removal_order(context, normalize_layers=True, step=0.1)
    order_s = time.monotonic() - start
    runs = [(float(e), h, float(w)) for e, h, w in (spec.split(":") for spec in args.search)]
    for epsilon in sorted({e for e, _, _ in runs}, reverse=True):
        for _, heuristic, weight in [r for r in runs if r[0] == epsilon]:
            settings = AStarSettings(epsilon=epsilon, branching=args.branching, heuristic=heuristic, weight=weight,
                                     max_masks=args.max_masks, time_limit_s=args.time_limit)
            r = astar_prune(evaluator, settings, progress=True)
            rows.append((f"A* {heuristic}, w={weight:g}, b={args.branching}", epsilon, r.head_config, r.evaluations,
                         r.wall_s, r.stop_reason))
            print(f"  A* {heuristic} w={weight:g} eps {epsilon}: {len(r.pruned)} pruned, {r.evaluations} masks, "
                  f"{r.expansions} expansions, {r.importance_passes} gradient passes, {r.wall_s:.0f} s, "
                  f"{r.stop_reason}; best-size trace {r.trace}", flush=True)
        start = time.monotonic()
        config_imp, n = iterative_importance(context, evaluator, order, epsilon)
        rows.append(("iterative importance (10%/step)", epsilon, config_imp, n, order_s + time.monotonic() - start,
                     "first failure"))
    dense = context.dense
    base = {name: accuracy(dense, data) for name, data in (("subset", subset), ("heldout", heldout), ("test", test))}
    print()
    print("| method | epsilon | heads removed | masks scored | wall s | stop | subset acc (drop) | held-out dev acc "
          "(drop) | test acc (drop) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| dense | - | 0/{L * H} | - | - | - | {base['subset']:.4f} | {base['heldout']:.4f} | {base['test']:.4f} |")
    for name, epsilon, cfg, n, wall, stop in rows:
        pruned = dense.prune(cfg)
        accs = {k: accuracy(pruned, d) for k, d in (("subset", subset), ("heldout", heldout), ("test", test))}
        cells = " | ".join(f"{accs[k]:.4f} ({(accs[k] - base[k]) * 100:+.2f})" for k in ("subset", "heldout", "test"))
        print(f"| {name} | {epsilon:g} | {L * H - cfg.total_kept}/{L * H} | {n} | {wall:.0f} | {stop} | {cells} |")
    fast, slow, n = throughput(dense, subset, args.repeats)
    print(f"\nmask scoring on {len(subset)} rows, {n} successor masks of one state, median of {args.repeats}: "
          f"batched + prefix reuse {fast:.2f} masks/s, one mask per full forward pass {slow:.2f} masks/s "
          f"({fast / slow:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

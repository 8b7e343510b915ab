"""A* mask scoring against a baseline scorer: same searches, masks per second, identical decisions.

    python benchmarks/astar_scoring.py studies/sst2_minilm.yaml --out runs/sst2_minilm --max-masks 200
    python benchmarks/astar_scoring.py studies/sst2_minilm_classifier.yaml --baseline whole --max-masks 150

For each A* setting (``--search`` as EPSILON:HEURISTIC:WEIGHT, branching ``--branching``), the search
runs twice on the study's ``--eval-rows`` subset, once with the baseline scorer and once with the
default one, in alternating order. ``--baseline full``: every mask on every row (no early stop, as before
issue 17); ``--baseline whole``: whole forward passes (no prefix reuse, as transformers models had before
issue 30). It prints both searches' masks per second and whether they made identical decisions (returned
state, trace of best states, masks scored, expansions, stop reason), masks stopped early and the fraction
of mask-rows scored.
``--long S``: then one search with the early stop and a wall-clock limit of S seconds (budget unlimited),
with the accuracy of its pruned model on the subset, the held-out rest of the search split and test.
"""

from __future__ import annotations

import time
from functools import partial

from _study import open_study, study_parser

from headsearch.analysis.mask_eval import MaskEvaluator
from headsearch.models import accuracy
from headsearch.strategies.astar import AStarResult, AStarSettings, astar_prune


class FullScoring(MaskEvaluator):
    """The scorer before the early stop: every mask on every row."""

    def score(self, masks, reference=None, at_least=None):
        return super().score(masks, reference)


BASELINES = {"full": FullScoring, "whole": partial(MaskEvaluator, reuse_prefix=False)}


def decisions(r: AStarResult) -> tuple:
    return r.pruned, r.trace, r.evaluations, r.expansions, r.stop_reason


def main() -> int:
    parser = study_parser(__doc__.splitlines()[0])
    parser.add_argument("--eval-rows", type=int, default=256)
    parser.add_argument("--search", nargs="+", default=["0.01:ablation:0.2", "0.01:importance:0.2"])
    parser.add_argument("--branching", type=int, default=8)
    parser.add_argument("--max-masks", type=int, default=200, help="masks per compared search")
    parser.add_argument("--long", type=float, default=0.0, help="seconds of one long search with the early stop")
    parser.add_argument("--long-search", default="0.01:importance:0.2")
    parser.add_argument("--baseline", choices=sorted(BASELINES), default="full",
                        help="full: no early stop of infeasible masks; whole: no prefix reuse")
    args = parser.parse_args()
    config, context, test = open_study(args)
    subset, heldout = context.search.split(args.eval_rows, seed=context.seed)
    print(f"model {config.model.source} {context.num_layers}x{context.num_heads}; subset {len(subset)} rows; "
          f"{args.threads} threads; branching {args.branching}; {args.max_masks} masks per search; "
          f"baseline {args.baseline}")
    print("| search | scorer | masks | wall s | masks/s | ratio | masks stopped early | mask-rows scored | identical |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, spec in enumerate(args.search):
        epsilon, heuristic, weight = spec.split(":")
        settings = AStarSettings(epsilon=float(epsilon), branching=args.branching, heuristic=heuristic,
                                 weight=float(weight), max_masks=args.max_masks, time_limit_s=None)
        results = {}
        base = args.baseline
        for name in ((base, "default") if i % 2 == 0 else ("default", base)):
            # a fresh evaluator per search: its memo would otherwise answer the masks an earlier search scored
            evaluator = (BASELINES[name] if name == base else MaskEvaluator)(context.dense, subset)
            results[name] = astar_prune(evaluator, settings, progress=True)
        same = decisions(results[base]) == decisions(results["default"])
        rate = {k: r.evaluations / r.wall_s for k, r in results.items()}
        for name in (base, "default"):
            r = results[name]
            rows = r.scoring["mask_rows"] / max(1, r.scoring["mask_rows_full"])
            print(f"| {spec} | {name} | {r.evaluations} | {r.wall_s:.0f} | {rate[name]:.2f} | "
                  f"{rate[name] / rate[base]:.2f}x | {r.scoring['stopped_early']} | {rows:.2f} | {same} |", flush=True)
        print(f"  {spec}: {len(results['default'].pruned)} heads pruned, trace {results['default'].trace}", flush=True)
    if args.long:
        epsilon, heuristic, weight = args.long_search.split(":")
        settings = AStarSettings(epsilon=float(epsilon), branching=args.branching, heuristic=heuristic,
                                 weight=float(weight), max_masks=10**9, time_limit_s=args.long)
        start = time.perf_counter()
        r = astar_prune(MaskEvaluator(context.dense, subset), settings, progress=True)
        pruned = context.dense.prune(r.head_config)
        accs = {name: (accuracy(pruned, d), accuracy(context.dense, d)) for name, d in
                (("subset", subset), ("held-out", heldout), ("test", test))}
        print(f"\nlong search {args.long_search}, {args.long:.0f} s limit: {len(r.pruned)} of "
              f"{context.num_layers * context.num_heads} heads removed, {r.evaluations} masks in "
              f"{time.perf_counter() - start:.0f} s ({r.stop_reason}), {r.scoring['stopped_early']} stopped early")
        for name, (a, d) in accs.items():
            print(f"  {name}: {a:.4f} (dense {d:.4f}, {100 * (a - d):+.2f} points)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

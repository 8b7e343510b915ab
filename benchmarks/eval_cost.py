"""Cost of evaluating one candidate against one dense forward pass over the evaluation split.

For a study's dense model and search split (the run folder's cached model is reused, or trained):
the median time of one dense pass over the split (pre-tokenised, as the evaluator does), then for
random half-head configurations the time to prune + score accuracy, and the full evaluation including
the interleaved latency measurement (``hardware.repeats`` repeats of dense and pruned).

    python benchmarks/eval_cost.py studies/quickstart.yaml
    python benchmarks/eval_cost.py studies/sst2_minilm.yaml --out runs/sst2_minilm
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

from headsearch import HeadConfig
from headsearch.study import build_context
from headsearch.study_config import load_study


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study")
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--out", help="run folder whose cached model to use (default: the study's output)")
    args = parser.parse_args(argv)
    config = load_study(args.study, output=args.out)
    context, evaluator = build_context(config)
    dense = context.dense.model
    base = statistics.median(timed(lambda: evaluator.accuracy(dense)) for _ in range(5))
    rng = random.Random(0)
    L, H = context.num_layers, context.num_heads
    prune_acc, full = [], []
    for _ in range(args.candidates):
        cfg = HeadConfig(tuple(tuple(rng.sample(range(H), max(1, H // 2))) for _ in range(L)), H)
        prune_acc.append(timed(lambda c=cfg: evaluator.accuracy(dense.prune(c))))
        full.append(timed(lambda c=cfg: evaluator.evaluate_model(dense.prune(c))))
    print(f"search split {context.search.name}: {len(context.search)} rows; dense pass {base * 1000:.1f} ms (median of 5)")
    print(f"prune + accuracy: median {statistics.median(prune_acc) * 1000:.1f} ms = "
          f"{statistics.median(prune_acc) / base:.2f}x a dense pass")
    print(f"full evaluation incl. latency ({evaluator.repeats} interleaved repeats): median "
          f"{statistics.median(full) * 1000:.1f} ms = {statistics.median(full) / base:.2f}x a dense pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())

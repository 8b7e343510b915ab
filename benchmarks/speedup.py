"""Measured speedup of structurally pruned models against the speedup their FLOPs imply.

For the built-in encoder and MiniLM-L6 at one sequence length, for each batch size and fraction of
heads kept (the same number of heads in every layer, which heads drawn at random with a fixed seed):
analytic FLOPs ratio, the ideal speedup it implies (dense FLOPs / pruned FLOPs), the measured speedup
of the pruned model over dense (interleaved in this process, median of repeats) and measured/ideal.

    python benchmarks/speedup.py                       # the README's table (about 10 minutes on 2 cores)
    python benchmarks/speedup.py --models builtin --repeats 5   # a quick look
"""

from __future__ import annotations

import argparse
import random
import sys

import torch

from headsearch import HeadConfig
from headsearch.cost import HardwareProfile, count_flops, measure_speedup
from headsearch.data import negation_task
from headsearch.models import BuiltinConfig, build_builtin, open_base


def uniform_config(num_layers: int, num_heads: int, fraction: float, seed: int) -> HeadConfig:
    rng = random.Random(seed)
    k = max(1, round(fraction * num_heads))
    return HeadConfig(tuple(tuple(rng.sample(range(num_heads), k)) for _ in range(num_layers)), num_heads)


def build(name: str, seq_len: int):
    if name == "builtin":
        # timing does not depend on the weights: an untrained built-in model of the default shape
        return build_builtin(negation_task(200), BuiltinConfig(max_length=seq_len)).model
    return open_base("minilm", label_names=("neg", "pos"), max_length=seq_len).model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["builtin", "minilm"], choices=["builtin", "minilm"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.25, 0.5, 0.75])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=21, help="interleaved measurements per model (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    print("| model | batch | heads kept | FLOPs ratio | ideal speedup | measured speedup | measured/ideal | dense ms |")
    print("|---|---|---|---|---|---|---|---|")
    profile = None
    for name in args.models:
        dense = build(name, args.seq_len)
        spec = dense.shape
        full = HeadConfig.dense(spec.num_layers, spec.num_heads)
        for batch in args.batch_sizes:
            profile = HardwareProfile(threads=args.threads, batch_size=batch, seq_len=args.seq_len)
            for fraction in args.fractions:
                config = uniform_config(spec.num_layers, spec.num_heads, fraction, args.seed)
                ratio = count_flops(spec, config, args.seq_len).total / count_flops(spec, full, args.seq_len).total
                result = measure_speedup(dense, dense.prune(config), profile, repeats=args.repeats)
                ideal = 1.0 / ratio
                print(f"| {name} | {batch} | {config.total_kept}/{config.total_heads} ({fraction:.0%}) | {ratio:.3f} | "
                      f"{ideal:.3f} | {result.speedup:.3f} | {result.speedup / ideal:.3f} | {result.dense.median_ms:.2f} |",
                      flush=True)
    if profile is not None:
        p = profile.to_dict()
        print(f"\nProfile: {p['device']}, {p['threads']} thread(s), seq {p['seq_len']}, CPU {p['cpu']}, "
              f"torch {p['torch_version']}, {args.repeats} interleaved repeats.")
    return 0


if __name__ == "__main__":
    torch.manual_seed(0)
    sys.exit(main())

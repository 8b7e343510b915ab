"""Pruned exports in the runtime they ship on: speedup over dense in eager PyTorch and in ONNX Runtime, against
the FLOPs ideal, as ``headsearch serve-check`` measures them.

For a classifier folder (default: the MiniLM-L6 SST-2 classifier of the README) and 25/50/75% of heads kept (the
same count in every layer; which heads drawn with a fixed seed: speed depends on the counts alone), each export
is written with ``model.onnx``, then loaded with transformers alone and with ONNX Runtime and timed round-robin
with the dense model in both runtimes (``headsearch.serve_check``), at each batch size. Nothing is asserted.

    python benchmarks/runtime_speedup.py runs/minilm-sst2-classifier --dataset sst2
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

from headsearch.cli import _dev_split, _open_model
from headsearch.cost import HardwareProfile
from headsearch.export import export
from headsearch.heads import HeadConfig
from headsearch.serve_check import serve_check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--dataset", default="sst2")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.25, 0.5, 0.75])
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    dense = _open_model(args.model)
    dev = _dev_split(dense, None, args.dataset, None)
    L, H = dense.model.num_layers, dense.model.num_heads
    rng = random.Random(0)
    print(f"{args.model}: {L} x {H} heads; {dev.name} ({len(dev)} rows); seq {args.seq_len}, {args.threads} thread(s), "
          f"{args.repeats} round-robin repeats")
    print("| heads kept | batch | FLOPs ratio | ideal | eager speedup | eager realised/ideal | ORT speedup | "
          "ORT realised/ideal | dense ms eager | dense ms ORT | accuracy (eager = ORT) | dense accuracy |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for fraction in args.fractions:
            k = max(1, round(fraction * H))
            config = HeadConfig(tuple(tuple(sorted(rng.sample(range(H), k))) for _ in range(L)), H)
            out = export(dense, Path(tmp) / f"export-{k}", head_config=config)
            for batch in args.batch_sizes:
                profile = HardwareProfile(threads=args.threads, batch_size=batch, seq_len=args.seq_len)
                r = serve_check(out, dense, args.model, dev, profile, repeats=args.repeats)
                eager, ort = r.runtimes
                same = "=" if eager.accuracy == ort.accuracy and r.disagreements == 0 else f"!= ({r.disagreements} rows)"
                print(f"| {config.total_kept}/{config.total_heads} ({fraction:.0%}) | {batch} | {r.flops_ratio:.3f} | "
                      f"{r.ideal:.3f} | {eager.speedup:.3f} | {eager.speedup / r.ideal:.3f} | {ort.speedup:.3f} | "
                      f"{ort.speedup / r.ideal:.3f} | {eager.dense_ms:.2f} | {ort.dense_ms:.2f} | {eager.accuracy:.4f} {same} | "
                      f"{r.dense_accuracy:.4f} |", flush=True)
    import onnxruntime
    import transformers

    p = profile.to_dict()
    print(f"\nCPU {p['cpu']}, torch {p['torch_version']}, transformers {transformers.__version__}, onnxruntime "
          f"{onnxruntime.__version__}; speedup = dense median / pruned median, both timed in the same runtime in one "
          "process; eager = the export loaded by transformers alone (trust_remote_code).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

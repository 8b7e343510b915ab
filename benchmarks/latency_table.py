"""Prediction error of the latency table (``headsearch.cost.latency_table``) against measured latency.

    python benchmarks/latency_table.py MODEL_DIR --batch-size 1 --configs 12
    python benchmarks/latency_table.py MODEL_DIR --batch-size 32 --configs 12
    python benchmarks/latency_table.py MODEL_DIR --batch-size 1 --configs 12 --runtime onnxruntime

MODEL_DIR: a headsearch model folder or a Hugging Face classifier folder (``save_pretrained``). Measures the
table once (layer by layer in eager; fitted on whole models in another ``--runtime``) on the profile (1 thread,
the given batch size and sequence length), then for random head configurations (each layer keeps a uniformly
drawn count of heads, at least one) measures the structurally pruned model interleaved with the dense one
(``measure_speedup``) and compares:
- the latency ratio pruned/dense the front uses: table's predict(config)/predict(dense) vs the measured one;
- absolute latency: predict(config) vs the measured pruned median.
Prints every configuration and the median relative errors.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import torch

from headsearch.cost import HardwareProfile, measure_speedup
from headsearch.cost.latency_table import measure_table
from headsearch.heads import HeadConfig
from headsearch.models import TextClassifier
from headsearch.models.hf.user_model import open_classifier
from headsearch.models.text_classifier import MODEL_FILE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--configs", type=int, default=12, help="random head configurations to check")
    parser.add_argument("--repeats", type=int, default=7, help="timing repeats (table entries and checks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runtime", default="eager", choices=["eager", "compile", "onnxruntime"],
                        help="what the table and the checks are timed in (outside eager: the whole-model fit)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    folder = Path(args.model_dir)
    own = (folder / MODEL_FILE).is_file()
    clf = TextClassifier.load(folder) if own else open_classifier(folder, max_length=args.seq_len)
    model = clf.model
    profile = HardwareProfile(threads=1, batch_size=args.batch_size, seq_len=args.seq_len, runtime=args.runtime)
    start = time.perf_counter()
    how = "layer by layer" if args.runtime == "eager" else f"fitted on whole models in {args.runtime}"
    table = measure_table(model, profile, repeats=args.repeats)
    print(f"{type(model).__name__} {model.num_layers} layers x {model.num_heads} heads, batch {args.batch_size}, "
          f"{args.seq_len} tokens, 1 thread: table measured {how} in {time.perf_counter() - start:.1f} s")
    dense = HeadConfig.dense(model.num_layers, model.num_heads)
    rng = random.Random(args.seed)
    ratio_errors, absolute_errors = [], []
    print(f"{'heads per layer':<24}{'pred ms':>9}{'meas ms':>9}{'pred ratio':>11}{'meas ratio':>11}{'ratio err':>10}")
    for _ in range(args.configs):
        counts = [rng.randint(1, model.num_heads) for _ in range(model.num_layers)]
        config = HeadConfig(tuple(tuple(range(c)) for c in counts), model.num_heads)
        timing = measure_speedup(model, model.prune(config), profile, repeats=args.repeats)
        predicted_ratio = table.predict(config) / table.predict(dense)
        measured_ratio = timing.pruned.median_ms / timing.dense.median_ms
        ratio_errors.append(abs(predicted_ratio - measured_ratio) / measured_ratio)
        absolute_errors.append(abs(table.predict(config) - timing.pruned.median_ms) / timing.pruned.median_ms)
        print(f"{' '.join(map(str, counts)):<24}{table.predict(config):>9.3f}{timing.pruned.median_ms:>9.3f}"
              f"{predicted_ratio:>11.3f}{measured_ratio:>11.3f}{ratio_errors[-1]:>10.1%}")
    print(f"median relative error: latency ratio {statistics.median(ratio_errors):.1%}, "
          f"absolute latency {statistics.median(absolute_errors):.1%} ({args.configs} configurations)")


if __name__ == "__main__":
    main()

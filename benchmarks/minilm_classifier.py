"""A user's own classifier, made once: all-MiniLM-L6-v2 fine-tuned on SST-2 as ``BertForSequenceClassification``
(its own [CLS] pooler and head, transformers' class throughout), saved with ``save_pretrained`` as a user would.

Prints its dev accuracy dense and at 50% of heads (36 of 72, one-shot gradient importance on 512 training rows,
no recovery), and for a random 36 heads (median of 5 draws). (Until issue 31 it also trained headsearch's own
encoder with a mean-pooled head for comparison; that encoder is retired, and ``minilm`` is now this same class.)

    python benchmarks/minilm_classifier.py --out runs/minilm-sst2-classifier   # about 20 minutes on 2 cores
    headsearch run studies/sst2_minilm_classifier.yaml                           # the study on that folder
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from headsearch.analysis.head_scores import gradient_importance
from headsearch.data import load_split
from headsearch.heads import HeadConfig
from headsearch.models import MINILM, TrainConfig, accuracy, open_base, train
from headsearch.models.text_classifier import TextClassifier

LABELS = ("negative", "positive")


def fine_tune(train_rows, out: Path, settings: TrainConfig, max_length: int, seed: int) -> TextClassifier:
    clf = open_base(MINILM, label_names=LABELS, max_length=max_length, seed=seed)  # BertForSequenceClassification
    train(clf, train_rows, settings)
    clf.model.hf.eval()
    clf.model.hf.save_pretrained(out)
    clf.tokenizer.hf.save_pretrained(out)
    return clf


def at_half(clf: TextClassifier, dev, scoring, seed: int) -> tuple[float, float]:
    """Dev accuracy keeping 36 of 72 heads: by one-shot importance, and the median of 5 random draws."""
    L, H = clf.model.num_layers, clf.model.num_heads
    scores = gradient_importance(clf, scoring)
    important = accuracy(clf, dev, gates=torch.tensor(HeadConfig.top(scores.tolist(), L * H // 2).mask()))
    rng = random.Random(seed)
    draws = []
    for _ in range(5):
        chosen = set(rng.sample([(i, h) for i in range(L) for h in range(H)], L * H // 2))
        config = HeadConfig(tuple(tuple(h for h in range(H) if (i, h) in chosen) for i in range(L)), H)
        draws.append(accuracy(clf, dev, gates=torch.tensor(config.mask())))
    return important, statistics.median(draws)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/minilm-sst2-classifier", help="folder for the fine-tuned classifier")
    parser.add_argument("--data-dir", default="../shared/data/sst2")
    parser.add_argument("--train-rows", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rows = load_split("sst2", "train", args.data_dir).sample(args.train_rows, seed=args.seed)
    dev = load_split("sst2", "dev", args.data_dir)
    scoring = rows.sample(512, seed=args.seed + 1)
    settings = TrainConfig(epochs=args.epochs, batch_size=32, learning_rate=5e-5, seed=args.seed)
    out = Path(args.out)
    start = time.perf_counter()
    hf_clf = fine_tune(rows, out, settings, args.max_length, args.seed)
    print(f"BertForSequenceClassification fine-tuned in {time.perf_counter() - start:.0f} s, saved to {out}")
    print("\n| model | dense dev | 36/72 heads by importance | 36/72 random heads (median of 5) |")
    print("|---|---|---|---|")
    important, random_half = at_half(hf_clf, dev, scoring, args.seed)
    print(f"| BertForSequenceClassification (own [CLS] head) | {accuracy(hf_clf, dev):.4f} | {important:.4f} | "
          f"{random_half:.4f} |", flush=True)
    print(f"\n{len(rows)} SST-2 training rows (seed {args.seed}), {args.epochs} epochs, lr 5e-5, batch 32, "
          f"{args.max_length} tokens; dev {len(dev)} rows; importance on {len(scoring)} other training rows.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

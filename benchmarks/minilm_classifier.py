"""A user's own classifier, made once: all-MiniLM-L6-v2 fine-tuned on SST-2 as ``BertForSequenceClassification``
(its own [CLS] pooler and head, transformers' class throughout), saved with ``save_pretrained`` as a user would.

Then, on the same 8,000 training rows, epochs and learning rate, today's own-encoder path (MiniLM mapped onto
headsearch's encoder with a fresh mean-pooled head, ``studies/sst2_minilm.yaml``'s model) for comparison: dev
accuracy dense and at 50% of heads (36 of 72, one-shot gradient importance on 512 training rows, no recovery),
and for a random 36 heads (median of 5 draws).

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
import transformers

from headsearch.analysis.head_scores import gradient_importance
from headsearch.data import load_split
from headsearch.data.tokenizers import TransformersTokenizer
from headsearch.heads import HeadConfig
from headsearch.models import TrainConfig, accuracy, minilm_path, train
from headsearch.models.hf.families import family_for
from headsearch.models.hf.model import TransformersClassifier
from headsearch.models.recipe import BaseModelRecipe, base_model
from headsearch.models.text_classifier import TextClassifier
from headsearch.study_config import DataConfig

LABELS = ("negative", "positive")


def fine_tune(train_rows, out: Path, settings: TrainConfig, max_length: int) -> TextClassifier:
    folder = minilm_path()
    hf = transformers.BertForSequenceClassification.from_pretrained(
        str(folder), num_labels=2, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
        local_files_only=True)
    tokenizer = TransformersTokenizer.load(folder)
    clf = TextClassifier(TransformersClassifier(hf, family_for("bert"), pair_separator=tokenizer.separator_id),
                         tokenizer, LABELS, max_length, source="minilm")
    train(clf, train_rows, settings)
    hf.eval()
    hf.save_pretrained(out)
    tokenizer.hf.save_pretrained(out)
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
    hf_clf = fine_tune(rows, out, settings, args.max_length)
    print(f"BertForSequenceClassification fine-tuned in {time.perf_counter() - start:.0f} s, saved to {out}")
    start = time.perf_counter()
    recipe = BaseModelRecipe(source="minilm", data=DataConfig(dataset="sst2", data_dir=Path(args.data_dir)).describe(),
                             max_length=args.max_length, seed=args.seed, train=settings)
    own = base_model(recipe, rows, out.parent / "minilm-sst2-own-encoder", progress=True)
    print(f"own encoder (mean-pooled fresh head) trained in {time.perf_counter() - start:.0f} s")
    print("\n| model | dense dev | 36/72 heads by importance | 36/72 random heads (median of 5) |")
    print("|---|---|---|---|")
    for name, clf in (("BertForSequenceClassification (transformers, own [CLS] head)", hf_clf),
                      ("headsearch encoder (mean-pooled head)", own)):
        important, random_half = at_half(clf, dev, scoring, args.seed)
        print(f"| {name} | {accuracy(clf, dev):.4f} | {important:.4f} | {random_half:.4f} |", flush=True)
    print(f"\n{len(rows)} SST-2 training rows (seed {args.seed}), {args.epochs} epochs, lr 5e-5, batch 32, "
          f"{args.max_length} tokens; dev {len(dev)} rows; importance on {len(scoring)} other training rows.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

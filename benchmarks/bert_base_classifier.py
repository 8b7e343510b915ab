"""A BERT-base-shaped classifier made offline: ``BertForSequenceClassification`` from a ``BertConfig`` (12 layers x
12 heads, hidden 768, intermediate 3072; random encoder weights, seeded), its head trained briefly on SST-2 with
the encoder frozen, saved with ``save_pretrained`` and MiniLM's tokenizer (BERT's uncased vocabulary).

Only its cost is realistic (every candidate runs a BERT-base's shapes); its accuracy is a little above chance,
since no pretrained BERT-base can be downloaded here. ``studies/sst2_bert_base_shaped.yaml`` searches it.

    python benchmarks/bert_base_classifier.py --out runs/bert-base-sst2-classifier     # about 2 minutes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import transformers

from headsearch.data import load_split
from headsearch.data.tokenizers import TransformersTokenizer
from headsearch.models import TrainConfig, accuracy, minilm_path, train
from headsearch.models.hf.families import family_for
from headsearch.models.hf.model import TransformersClassifier
from headsearch.models.text_classifier import TextClassifier

LABELS = ("negative", "positive")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bert-base-sst2-classifier")
    parser.add_argument("--data-dir", default="../shared/data/sst2")
    parser.add_argument("--train-rows", type=int, default=1000)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = TransformersTokenizer.load(minilm_path())
    config = transformers.BertConfig(vocab_size=tokenizer.hf.vocab_size, num_labels=len(LABELS),
                                     id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    hf = transformers.BertForSequenceClassification(config)
    clf = TextClassifier(TransformersClassifier(hf, family_for("bert"), pair_separator=tokenizer.separator_id),
                         tokenizer, LABELS, args.max_length, source="bert-base-shaped")
    rows = load_split("sst2", "train", args.data_dir).sample(args.train_rows, seed=args.seed)
    start = time.perf_counter()
    train(clf, rows, TrainConfig(epochs=1, batch_size=32, learning_rate=1e-3, freeze_encoder=True, seed=args.seed))
    hf.eval()
    out = Path(args.out)
    hf.save_pretrained(out)
    tokenizer.hf.save_pretrained(out)
    dev = load_split("sst2", "dev", args.data_dir)
    print(f"BERT-base-shaped classifier ({sum(p.numel() for p in hf.parameters()) / 1e6:.0f}M parameters), head "
          f"trained on {len(rows)} rows in {time.perf_counter() - start:.0f} s; dev accuracy {accuracy(clf, dev):.4f}; "
          f"saved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

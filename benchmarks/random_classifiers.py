"""Random-weight classifiers of every supported family at a timing-worthy size (6 layers x 8 heads, hidden 512),
built offline from configs and saved as a user saves theirs, for the latency benchmarks:

    python benchmarks/random_classifiers.py --out runs/random-classifiers
    python benchmarks/latency_table.py runs/random-classifiers/qwen2 --batch-size 1 --configs 12

Weights are random (only cost is measured on them); the tokenizer is the tests' word-level one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hf_models import SPECIALS, WORDS, _tokenizer  # noqa: E402  (the tests' tokenizer for each family)

BERT_LIKE = {"hidden_size": 512, "num_hidden_layers": 6, "num_attention_heads": 8, "intermediate_size": 2048}
DECODER = {"hidden_size": 512, "num_hidden_layers": 6, "num_attention_heads": 8, "num_key_value_heads": 2,
           "intermediate_size": 1376}
SHAPES = {
    "bert": ("BertConfig", BERT_LIKE),
    "roberta": ("RobertaConfig", {**BERT_LIKE, "pad_token_id": 0}),
    "electra": ("ElectraConfig", {**BERT_LIKE, "embedding_size": 128}),
    "distilbert": ("DistilBertConfig", {"dim": 512, "n_layers": 6, "n_heads": 8, "hidden_dim": 2048}),
    "deberta-v2": ("DebertaV2Config", {**BERT_LIKE, "relative_attention": True, "pos_att_type": ["p2c", "c2p"],
                                       "position_buckets": 32, "max_relative_positions": 128, "type_vocab_size": 0}),
    "llama": ("LlamaConfig", DECODER),
    "qwen2": ("Qwen2Config", DECODER),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/random-classifiers"))
    parser.add_argument("--families", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    args = parser.parse_args()
    for family in args.families:
        name, shape = SHAPES[family]
        config = getattr(transformers, name)(vocab_size=len(SPECIALS) + len(WORDS), max_position_embeddings=128,
                                             num_labels=2, id2label={0: "negative", 1: "positive"},
                                             label2id={"negative": 0, "positive": 1}, **shape)
        torch.manual_seed(0)
        model = transformers.AutoModelForSequenceClassification.from_config(config)
        folder = args.out / family
        model.save_pretrained(folder)
        _tokenizer(family, transformers).save_pretrained(folder)
        print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Pruned Hugging Face models: measured speedup against the FLOPs ideal and a hand-sliced reference.

For a BERT-base shape (12 layers x 12 heads, hidden 768; ``BertForSequenceClassification``) and a grouped-query
shape (``LlamaForSequenceClassification``: 8 layers, 16 query heads in 4 key/value groups, head size 64), random
weights, at 25/50/75% of heads kept (the same count in every layer, which heads drawn with a fixed seed):

- ``headsearch``: the model as headsearch prunes and evaluates it (``TransformersClassifier.prune``, hooks on);
- ``hand``: a reference sliced by hand, without headsearch's code: BERT's projections (the same layout);
  for GQA query heads, one key/value head per kept query head (copies of its group's rows: no repetition at
  run time, more key/value rows); for whole key/value groups, the kept groups.

Every model of a row is timed round-robin with the dense model in one process (medians of ``--repeats``);
speedups are dense median / model median. Nothing is asserted: this prints the README's table.

    python benchmarks/hf_speedup.py                         # both shapes, B=1 and B=32 (about 25 minutes on 2 cores)
    python benchmarks/hf_speedup.py --shapes bert --batch-sizes 1 --repeats 5
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys

import torch
import transformers
from torch import nn

from headsearch import HeadConfig
from headsearch.cost import HardwareProfile, count_flops
from headsearch.cost.latency import call_timer, interleaved, random_inputs
from headsearch.models.hf.families import family_for
from headsearch.models.hf.model import TransformersClassifier


def bert_base() -> nn.Module:
    config = transformers.BertConfig(num_labels=2)  # 12 x 12, hidden 768, FFN 3072, vocab 30522
    return transformers.BertForSequenceClassification(config).eval()


def gqa() -> nn.Module:
    config = transformers.LlamaConfig(hidden_size=1024, num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=4,
                                      head_dim=64, intermediate_size=2816, vocab_size=32000, num_labels=2, pad_token_id=0)
    return transformers.LlamaForSequenceClassification(config).eval()


def uniform(model: TransformersClassifier, fraction: float, seed: int) -> HeadConfig:
    rng = random.Random(seed)
    k = max(1, round(fraction * model.num_heads))
    return HeadConfig(tuple(tuple(rng.sample(range(model.num_heads), k)) for _ in range(model.num_layers)), model.num_heads)


def hand_sliced_bert(hf: nn.Module, config: HeadConfig) -> nn.Module:
    """BERT cut by hand: each layer's query/key/value rows and output columns of the kept heads."""
    import copy

    model = copy.deepcopy(hf)
    d = model.config.hidden_size // model.config.num_attention_heads
    for layer, kept in zip(model.bert.encoder.layer, config.kept, strict=True):
        rows = torch.cat([torch.arange(h * d, (h + 1) * d) for h in kept])
        attn = layer.attention
        for name in ("query", "key", "value"):
            old = getattr(attn.self, name)
            new = nn.Linear(old.in_features, len(rows))
            new.weight.data, new.bias.data = old.weight.data[rows].clone(), old.bias.data[rows].clone()
            setattr(attn.self, name, new)
        old = attn.output.dense
        new = nn.Linear(len(rows), old.out_features)
        new.weight.data, new.bias.data = old.weight.data[:, rows].clone(), old.bias.data.clone()
        attn.output.dense = new
        attn.self.num_attention_heads = len(kept)
    return model.eval()


def hand_sliced_llama(hf: nn.Module, config: HeadConfig, unit: str) -> nn.Module:
    """Llama cut by hand, without headsearch's code: the kept query heads' rows; for query heads one key/value
    head per kept query head (copies of its group's rows: the layout that needs no repetition at run time),
    for whole groups the kept groups' rows."""
    import copy

    model = copy.deepcopy(hf)
    c = model.config
    group, d = c.num_attention_heads // c.num_key_value_heads, c.head_dim
    for layer, kept in zip(model.model.layers, config.kept, strict=True):
        queries = [q for u in kept for q in (range(u * group, (u + 1) * group) if unit == "kv_group" else (u,))]
        kv = list(kept) if unit == "kv_group" else [q // group for q in queries]
        q_rows = torch.cat([torch.arange(q * d, (q + 1) * d) for q in queries])
        kv_rows = torch.cat([torch.arange(g * d, (g + 1) * d) for g in kv])
        attn = layer.self_attn
        for name, rows in (("q_proj", q_rows), ("k_proj", kv_rows), ("v_proj", kv_rows)):
            old = getattr(attn, name)
            new = nn.Linear(old.in_features, len(rows), bias=False)
            new.weight.data = old.weight.data[rows].clone()
            setattr(attn, name, new)
        new = nn.Linear(len(q_rows), attn.o_proj.out_features, bias=False)
        new.weight.data = attn.o_proj.weight.data[:, q_rows].clone()
        attn.o_proj = new
        attn.num_key_value_groups = group if unit == "kv_group" else 1
    return model.eval()


def call(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> None:
    if isinstance(model, TransformersClassifier) or not hasattr(model, "config"):
        model(ids, mask)
    else:
        model(input_ids=ids, attention_mask=mask, **({"use_cache": False} if "llama" in model.config.model_type else {}))


def time_round_robin(models: dict[str, nn.Module], inputs, profile: HardwareProfile, repeats: int) -> dict[str, float]:
    timers = {name: call_timer(functools.partial(call, m, *inputs), profile) for name, m in models.items()}
    return {name: statistics.median(v) for name, v in interleaved(timers, repeats=repeats, warmup=2).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["bert", "gqa", "gqa-groups"], choices=["bert", "gqa", "gqa-groups"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.25, 0.5, 0.75])
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print("| shape | batch | heads kept | FLOPs ratio | ideal | headsearch | headsearch/ideal | hand | headsearch/hand "
          "| dense ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    profile = None
    for shape in args.shapes:
        hf = bert_base() if shape == "bert" else gqa()
        unit = "kv_group" if shape == "gqa-groups" else "query"
        dense = TransformersClassifier(hf, family_for(hf.config.model_type), unit=unit)
        full = HeadConfig.dense(dense.num_layers, dense.num_heads)
        for batch in args.batch_sizes:
            profile = HardwareProfile(threads=args.threads, batch_size=batch, seq_len=args.seq_len)
            inputs = random_inputs(dense, profile)
            for fraction in args.fractions:
                config = uniform(dense, fraction, args.seed)
                ratio = count_flops(dense.shape, config, args.seq_len).total / count_flops(dense.shape, full, args.seq_len).total
                models = {"dense": dense, "headsearch": dense.prune(config),
                          "hand": hand_sliced_bert(hf, config) if shape == "bert" else hand_sliced_llama(hf, config, unit)}
                ms = time_round_robin(models, inputs, profile, args.repeats)
                speed = {name: ms["dense"] / v for name, v in ms.items()}
                ideal = 1 / ratio
                print(f"| {shape} | {batch} | {config.total_kept}/{config.total_heads} ({fraction:.0%}) | {ratio:.3f} | "
                      f"{ideal:.3f} | {speed['headsearch']:.3f} | {speed['headsearch'] / ideal:.3f} | {speed['hand']:.3f} | "
                      f"{ms['hand'] / ms['headsearch']:.3f} | {ms['dense']:.1f} |", flush=True)
    if profile is not None:
        p = profile.to_dict()
        print(f"\nProfile: {p['device']}, {p['threads']} thread(s), seq {p['seq_len']}, CPU {p['cpu']}, torch "
              f"{p['torch_version']}, transformers {transformers.__version__}, {args.repeats} round-robin repeats. "
              "headsearch/hand: the hand-sliced model's latency over headsearch's (> 1: headsearch faster).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

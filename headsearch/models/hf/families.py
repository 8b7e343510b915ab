"""Model families headsearch prunes as they are: where each keeps its attention, declared, not coded.

A ``Family`` names, for one layout of Hugging Face's modelling code, the path from ``model.base_model`` to
the list of layers, and from a layer to the attention pieces surgery and gating touch. Adding a family is
one more entry here, checked by the family tests (masked forward == pruned == reloaded == ONNX). Paths
were read from transformers 5.24: BERT's, Llama's and their relatives' attention reshape with ``-1``
heads, so slicing the projections' rows and columns runs unchanged through their attention kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from headsearch.errors import ModelError
from headsearch.models.hf.surgery import Layout


@dataclass(frozen=True, kw_only=True)
class Family(Layout):
    """A ``Layout`` (paths to the attention's pieces) with the ``model_type`` values that use it; ``decoder``:
    a causal model that classifies from its last token (its head runs on every position)."""

    name: str
    model_types: tuple[str, ...]
    decoder: bool = False

    @property
    def layout(self) -> Layout:
        """The paths alone, as an export's modelling file rebuilds them (``hf.standalone``)."""
        return Layout(**{f.name: getattr(self, f.name) for f in fields(Layout)})


_BERT_LIKE = {"layers": "encoder.layer", "core": "attention.self", "query": "attention.self.query",
              "key": "attention.self.key", "value": "attention.self.value", "output": "attention.output.dense",
              "head_counts": ("num_attention_heads",)}
_DECODER = {"layers": "layers", "core": "self_attn", "query": "self_attn.q_proj", "key": "self_attn.k_proj",
            "value": "self_attn.v_proj", "output": "self_attn.o_proj", "decoder": True}

FAMILIES: tuple[Family, ...] = (
    Family(name="bert", model_types=("bert",), **_BERT_LIKE),
    Family(name="roberta", model_types=("roberta", "xlm-roberta", "camembert"), **_BERT_LIKE),
    Family(name="electra", model_types=("electra",), **_BERT_LIKE),
    Family(name="distilbert", model_types=("distilbert",), layers="transformer.layer", core="attention",
           query="attention.q_lin", key="attention.k_lin", value="attention.v_lin", output="attention.out_lin",
           head_counts=("n_heads",)),
    Family(name="deberta-v2", model_types=("deberta-v2",), layers="encoder.layer", core="attention.self",
           query="attention.self.query_proj", key="attention.self.key_proj", value="attention.self.value_proj",
           output="attention.output.dense", per_head=("attention.self.pos_key_proj", "attention.self.pos_query_proj"),
           head_counts=("num_attention_heads",)),
    Family(name="llama", model_types=("llama", "mistral"), **_DECODER),
    Family(name="qwen2", model_types=("qwen2", "qwen3"), **_DECODER),
)


def supported_types() -> list[str]:
    return sorted(t for f in FAMILIES for t in f.model_types)


def family_for(model_type: str | None, *, where: str = "") -> Family:
    """The family of a ``config.json``'s ``model_type``, or a one-line error listing the supported ones."""
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    prefix = f"{where}: " if where else ""
    raise ModelError(f"{prefix}model_type {model_type!r} is not a supported family; headsearch prunes "
                     f"{', '.join(supported_types())} (*ForSequenceClassification models).")

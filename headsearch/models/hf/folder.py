"""The transformers half of headsearch's model folder (``TextClassifier.save``/``load``).

``save_model`` writes the dense ``config.json`` and the pruned weights; ``load_model`` rebuilds the
transformers class from the config, cuts it to the kept heads, then reads the weights, so a pruned model
comes back as the user's own class with the pruned shapes. Nothing is downloaded: reads are local.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from headsearch.errors import ModelError
from headsearch.heads import HeadConfig
from headsearch.models.hf.families import family_for
from headsearch.models.hf.model import TransformersClassifier
from headsearch.models.hf.standalone import dense_config, standalone_config

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def read_config(folder: str | Path) -> dict[str, Any]:
    """``config.json`` of a model folder, or a one-line error saying what is wrong with the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"Model folder not found: {folder}")
    file = folder / CONFIG_FILE
    if not file.is_file():
        raise ModelError(f"{folder}: no {CONFIG_FILE}; not a Hugging Face model folder (save it with save_pretrained).")
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{file}: not valid JSON ({exc}).") from exc
    if not isinstance(config, dict):
        raise ModelError(f"{file}: a config is a JSON object.")
    return config


# what from_pretrained reads, in its order of preference: one file, or an index of shards
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_weights(folder: str | Path) -> None:
    """One line when ``folder`` holds no weights that ``from_pretrained`` reads, or when a safetensors file
    (or shard) is cut short or corrupted: its header and size are checked, not its tensors (fast, reads a
    few bytes). A ``.bin`` file is checked when it is loaded."""
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    found = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if found is None:
        raise ModelError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES[:3])}); save the model with "
                         "save_pretrained, or copy its weight files too.")
    files = [found]
    if found.name.endswith(".index.json"):
        try:
            shards = sorted(set(json.loads(found.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"{found}: not a weight index ({type(exc).__name__}: {exc}).") from exc
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise ModelError(f"{found}: shard(s) {missing[:3]} missing; copy every shard the index names.")
        files = [folder / s for s in shards]
    for file in files:
        if file.suffix != ".safetensors":
            continue
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except (SafetensorError, OSError) as exc:
            raise ModelError(f"{file}: cut short or corrupted ({exc}); copy the model folder again.") from exc


SHAPE_KEYS = ("hidden_size", "num_attention_heads", "num_hidden_layers")


def check_shape(folder: str | Path, config: dict[str, Any], keys: tuple[str, ...] = SHAPE_KEYS,
                aliases: dict[str, str] | None = None) -> None:
    """One line naming the first of ``keys`` that ``config`` lacks or that is not a positive integer
    (``aliases``: a family's own name for a key, e.g. DistilBERT's ``dim`` for ``hidden_size``), and heads
    that do not divide the hidden size (unless the config gives ``head_dim``). transformers would fill a
    missing key with its default and fail later on the weights, or divide by zero."""
    aliases = aliases or {}
    values = {}
    for key in keys:
        alias = aliases.get(key, key)
        name = alias if alias in config else key
        value = config.get(name)
        if name not in config:
            raise ModelError(f"{Path(folder) / CONFIG_FILE}: no {name!r}; the model's shape needs it (save the folder "
                             "with save_pretrained).")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelError(f"{Path(folder) / CONFIG_FILE}: {name} is {value!r}; it must be a positive integer.")
        values[key] = value
    hidden, heads = values.get("hidden_size"), values.get("num_attention_heads")
    if hidden and heads and "head_dim" not in config and hidden % heads:
        raise ModelError(f"{Path(folder) / CONFIG_FILE}: hidden_size {hidden} is not a multiple of num_attention_heads "
                         f"{heads}.")


def save_model(model: TransformersClassifier, folder: Path, *, standalone: bool = True) -> dict[str, Any]:
    """Write ``config.json`` and the (pruned) weights; returns what ``load_model`` needs besides. ``standalone``:
    the config names each layer's heads and a modelling file that transformers loads alone (``hf.standalone``);
    otherwise it is the dense config (a routed model: its heads change per input, only headsearch runs it)."""
    from safetensors.torch import save_model as save_weights

    config = standalone_config(model.hf, model.kept_query_heads, model.family.layout, folder) if standalone else model.hf.config
    config.save_pretrained(str(folder))
    save_weights(model.hf, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    return {"family": model.family.name, "unit": model.unit, "pair_separator": model.pair_separator,
            "class": type(model.hf).__name__}


def load_model(folder: Path, info: dict[str, Any], head_config: HeadConfig) -> TransformersClassifier:
    """The transformers model saved by ``save_model``: built from its config, cut to ``head_config``, weights read."""
    from safetensors.torch import load_model as load_weights
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = dense_config(AutoConfig.from_pretrained(str(folder), local_files_only=True))
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{folder}: cannot read {CONFIG_FILE} ({str(exc).splitlines()[0]}).") from exc
    family = family_for(config.model_type, where=str(folder))
    hf = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32).eval()
    if type(hf).__name__ != info.get("class", type(hf).__name__):
        raise ModelError(f"{folder}: the config builds {type(hf).__name__}, the weights are of {info['class']}.")
    model = TransformersClassifier(hf, family, unit=info["unit"], pair_separator=info.get("pair_separator"))
    if head_config != model.head_config:
        model = model.prune(head_config)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{folder}: {WEIGHTS_FILE} is missing.")
    try:
        load_weights(model.hf, str(weights), strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{weights}: weights do not match the kept heads ({str(exc).splitlines()[0]}).") from exc
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupted files
        raise ModelError(f"{weights}: cannot read the weights ({exc}).") from exc
    return model.eval()

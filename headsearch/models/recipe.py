"""The dense base model of a run, from a recipe: used by ``headsearch train`` and studies.

Three sources, all run as transformers models: the built-in model (a small BERT built from a config,
trained here), a base checkpoint such as ``minilm`` (its family's classifier with a fresh head, trained
here), or the user's fine-tuned Hugging Face classifier, used as it is. Either way the run folder keeps a
copy (``model/``) that later runs, workers and exports read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headsearch._fs import atomic_folder
from headsearch.data.text import TextDataset
from headsearch.errors import ModelError
from headsearch.models.builtin import BuiltinConfig, build_builtin
from headsearch.models.hf.base import MINILM, check_base_folder, open_base, resolve_model_path
from headsearch.models.hf.folder import CONFIG_FILE, read_config
from headsearch.models.hf.user_model import check_classifier_folder, is_sequence_classifier, open_classifier
from headsearch.models.text_classifier import MODEL_FILE, TextClassifier
from headsearch.models.training import TrainConfig, train_or_load


def is_user_classifier(source: str) -> bool:
    """Whether ``source`` names a local fine-tuned ``*ForSequenceClassification`` folder (searched as it is)."""
    if source in ("builtin", MINILM) or not Path(source).is_dir():
        return False
    return (Path(source) / CONFIG_FILE).is_file() and is_sequence_classifier(read_config(source))


@dataclass(frozen=True, kw_only=True)
class BaseModelRecipe:
    """``source``: "builtin", "minilm", a base checkpoint folder or a fine-tuned classifier folder; ``data`` records
    the data section (absolute paths) so that later commands find the model's data again."""

    source: str = "builtin"
    data: dict[str, Any] = field(default_factory=lambda: {"dataset": "synthetic"})
    max_length: int = 64
    seed: int = 0
    builtin: BuiltinConfig = BuiltinConfig()
    head_unit: str = "query"
    train: TrainConfig | None = TrainConfig(epochs=5, batch_size=32, learning_rate=1e-3)

    @property
    def trains(self) -> bool:
        return not is_user_classifier(self.source)

    def describe(self) -> dict:
        recipe = {"data": self.data, "model": self.source, "max_length": self.max_length, "seed": self.seed}
        if self.source == "builtin":
            recipe["builtin"] = BuiltinConfig(**{**self.builtin.to_dict(), "max_length": self.max_length}).to_dict()
        if not self.trains:
            recipe["head_unit"] = self.head_unit
        return recipe


def check_source(source: str, head_unit: str = "query") -> None:
    """What can be checked of a model source before a run writes anything, without reading weights."""
    if source == "builtin":
        return
    if is_user_classifier(source):
        check_classifier_folder(source, head_unit)
    else:
        check_base_folder(resolve_model_path(source))


def default_learning_rate(source: str) -> float:
    return 1e-3 if source == "builtin" else 5e-5


def base_model(recipe: BaseModelRecipe, train: TextDataset, checkpoint: str | Path, *,
               progress: bool = True) -> TextClassifier:
    """The run's dense model in ``checkpoint``: trained there (or reused when trained so before), or for a
    fine-tuned classifier, copied there from the user's folder."""
    if not recipe.trains:
        return _user_classifier(recipe, Path(checkpoint))
    if recipe.train is None:
        raise ModelError(f"{recipe.source}: model.train is null, but this model needs training (only a fine-tuned "
                         "*ForSequenceClassification folder is used as it is).")

    def build() -> TextClassifier:
        if recipe.source == "builtin":
            shape = BuiltinConfig(**{**recipe.builtin.to_dict(), "max_length": recipe.max_length})
            return build_builtin(train, shape, seed=recipe.seed)
        return open_base(recipe.source, label_names=train.label_names, max_length=recipe.max_length, seed=recipe.seed)

    return train_or_load(checkpoint, build, recipe.describe(), train, recipe.train, progress=progress)


def _user_classifier(recipe: BaseModelRecipe, checkpoint: Path) -> TextClassifier:
    """The user's classifier as it is; the run keeps a copy, refreshed when the folder's weights change."""
    folder = Path(recipe.source).resolve()
    files = sorted([folder / CONFIG_FILE, *folder.glob("*.safetensors"), *folder.glob("*.bin")])
    stamp = {**recipe.describe(), "files": {p.name: [p.stat().st_size, p.stat().st_mtime] for p in files}}
    key = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:16]
    if (checkpoint / MODEL_FILE).is_file():
        saved = TextClassifier.load(checkpoint)
        if saved.meta.get("training", {}).get("fingerprint") == key:
            return saved
    clf = open_classifier(folder, max_length=recipe.max_length, unit=recipe.head_unit)
    clf.meta["training"] = {"fingerprint": key, "recipe": recipe.describe(), "trained": False}
    with atomic_folder(checkpoint) as tmp:
        clf.save(tmp)
    return clf

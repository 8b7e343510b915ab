"""The dense base model of a run, built from a recipe and cached: used by ``headsearch train`` and studies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headsearch.data.text import TextDataset
from headsearch.models.bert import load_bert
from headsearch.models.builtin import BuiltinConfig, build_builtin
from headsearch.models.text_classifier import TextClassifier
from headsearch.models.training import TrainConfig, train_or_load


@dataclass(frozen=True, kw_only=True)
class BaseModelRecipe:
    """``source``: "builtin", "minilm" or a local BERT folder; ``dataset`` names the data for later reuse."""

    source: str = "builtin"
    dataset: str = "synthetic"
    data_dir: str | None = None
    max_length: int = 64
    seed: int = 0
    builtin: BuiltinConfig = BuiltinConfig()
    epochs: int = 5
    learning_rate: float | None = None
    batch_size: int = 32
    freeze_encoder: bool = False

    def train_config(self) -> TrainConfig:
        lr = self.learning_rate if self.learning_rate is not None else (1e-3 if self.source == "builtin" else 5e-5)
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, seed=self.seed,
                           freeze_encoder=self.freeze_encoder, learning_rate=lr)

    def describe(self) -> dict:
        recipe = {"dataset": self.dataset, "data_dir": self.data_dir, "model": self.source,
                  "max_length": self.max_length, "seed": self.seed}
        if self.source == "builtin":
            recipe["builtin"] = BuiltinConfig(**{**self.builtin.to_dict(), "max_length": self.max_length}).to_dict()
        return recipe


def base_model(recipe: BaseModelRecipe, train: TextDataset, checkpoint: str | Path, *,
               progress: bool = True) -> TextClassifier:
    """Train the recipe's model on ``train`` into ``checkpoint``, or load it when already trained so."""

    def build() -> TextClassifier:
        if recipe.source == "builtin":
            shape = BuiltinConfig(**{**recipe.builtin.to_dict(), "max_length": recipe.max_length})
            return build_builtin(train, shape, seed=recipe.seed)
        return load_bert(recipe.source, label_names=train.label_names, max_length=recipe.max_length, seed=recipe.seed)

    return train_or_load(checkpoint, build, recipe.describe(), train, recipe.train_config(), progress=progress)

"""Models that implement the HeadedModel contract: gates, per-head recording, structural pruning."""

from headsearch.models.builtin import BuiltinConfig, build_builtin
from headsearch.models.headed import HeadedModel, HeadRecord
from headsearch.models.hf.base import MINILM, minilm_path, open_base
from headsearch.models.hf.model import TransformersClassifier
from headsearch.models.hf.user_model import open_classifier
from headsearch.models.shape import ModelShape
from headsearch.models.text_classifier import TextClassifier
from headsearch.models.training import TrainConfig, accuracy, train, train_or_load

__all__ = [
    "MINILM",
    "BuiltinConfig",
    "HeadRecord",
    "HeadedModel",
    "ModelShape",
    "TransformersClassifier",
    "TextClassifier",
    "TrainConfig",
    "accuracy",
    "build_builtin",
    "minilm_path",
    "open_base",
    "open_classifier",
    "train",
    "train_or_load",
]

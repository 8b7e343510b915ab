"""Models that implement the HeadedModel contract: gates, per-head recording, structural pruning."""

from headsearch.models.bert import MINILM, load_bert, minilm_path
from headsearch.models.builtin import BuiltinConfig, build_builtin
from headsearch.models.classifier import EncoderSpec, HeadedClassifier, HeadRecord
from headsearch.models.text_classifier import TextClassifier
from headsearch.models.training import TrainConfig, accuracy, train, train_or_load

__all__ = [
    "MINILM",
    "BuiltinConfig",
    "EncoderSpec",
    "HeadRecord",
    "HeadedClassifier",
    "TextClassifier",
    "TrainConfig",
    "accuracy",
    "build_builtin",
    "load_bert",
    "minilm_path",
    "train",
    "train_or_load",
]

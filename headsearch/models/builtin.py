"""The built-in encoder: a small word-level Transformer classifier that trains on a 2-core CPU in minutes."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from headsearch.data.text import TextDataset
from headsearch.data.tokenizers import WordTokenizer
from headsearch.errors import ModelError
from headsearch.models.classifier import EncoderSpec, HeadedClassifier
from headsearch.models.text_classifier import TextClassifier


@dataclass(frozen=True, kw_only=True)
class BuiltinConfig:
    """Shape of the built-in encoder. ``hidden_size`` must be a multiple of ``num_heads``."""

    num_layers: int = 4
    num_heads: int = 8
    hidden_size: int = 128
    intermediate_size: int = 512
    max_length: int = 64
    max_vocab: int = 20000
    min_freq: int = 1
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("num_layers", "num_heads", "hidden_size", "intermediate_size", "max_length", "max_vocab"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"The '{name}' parameter of BuiltinConfig must be an int >= 1. Got {value!r}.")
        if self.hidden_size % self.num_heads:
            raise ModelError(
                f"The 'hidden_size' parameter of BuiltinConfig ({self.hidden_size}) must be a multiple of "
                f"num_heads ({self.num_heads})."
            )

    def to_dict(self) -> dict:
        return asdict(self)


def build_builtin(train: TextDataset, config: BuiltinConfig = BuiltinConfig(), *, seed: int = 0) -> TextClassifier:
    """An untrained built-in encoder whose vocabulary comes from ``train``'s texts."""
    tokenizer = WordTokenizer.build(train.texts, max_size=config.max_vocab, min_freq=config.min_freq)
    spec = EncoderSpec(
        vocab_size=tokenizer.vocab_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        head_dim=config.hidden_size // config.num_heads,
        intermediate_size=config.intermediate_size,
        max_positions=config.max_length,
        num_classes=train.num_classes,
        dropout=config.dropout,
        layer_norm_eps=1e-5,
    )
    torch.manual_seed(seed)
    model = HeadedClassifier(spec)
    _init_weights(model)
    model.eval()
    return TextClassifier(model, tokenizer, train.label_names, config.max_length, source="builtin",
                          meta={"builtin": config.to_dict()})


def _init_weights(model: HeadedClassifier) -> None:
    """BERT's initialisation (normal 0.02, zero biases), which trains small encoders more stably than torch's."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear | torch.nn.Embedding):
            torch.nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, torch.nn.Linear) and module.bias is not None:
            torch.nn.init.zeros_(module.bias)

"""The tokenizer of a model folder: the user's own Hugging Face tokenizer (or the built-in model's word-level
one, a ``PreTrainedTokenizerFast`` too).

It turns a batch of texts (or text pairs) into ``(input_ids, attention_mask)`` padded on the right to
the longest text in the batch and truncated to ``max_length``, and saves itself beside the model's weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from headsearch.errors import ModelError


class Tokenizer(Protocol):
    kind: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, texts: Sequence[str], max_length: int,
               pairs: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...

    def save(self, folder: Path) -> None: ...


class TransformersTokenizer:
    """The tokenizer of the user's Hugging Face model folder (``AutoTokenizer``), exactly as the model was
    fine-tuned with: its special tokens, pair template and truncation. Padding is forced to the right (the
    evaluation trims batches to their longest row); a tokenizer without a padding token pads with its
    end-of-sequence token, as decoder classifiers are fine-tuned."""

    kind = "transformers"

    def __init__(self, tokenizer):
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ModelError("The tokenizer has neither a padding nor an end-of-sequence token; set pad_token.")
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        self._tok = tokenizer

    @classmethod
    def load(cls, folder: Path) -> TransformersTokenizer:
        """The folder's tokenizer. A plain ``tokenizer.json`` pipeline (``tokenizer_class`` TokenizersBackend or
        PreTrainedTokenizerFast) is read as such: ``AutoTokenizer`` would substitute the class of the model type."""
        import transformers

        try:
            saved = json.loads((folder / "tokenizer_config.json").read_text()).get("tokenizer_class")
        except (OSError, ValueError, AttributeError):
            saved = None
        reader = transformers.PreTrainedTokenizerFast if saved in ("TokenizersBackend", "PreTrainedTokenizerFast") \
            else transformers.AutoTokenizer
        try:
            return cls(reader.from_pretrained(str(folder), local_files_only=True))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{folder}: cannot read the tokenizer ({str(exc).splitlines()[0]}).") from exc

    @property
    def vocab_size(self) -> int:
        return len(self._tok)

    @property
    def pad_id(self) -> int:
        return int(self._tok.pad_token_id)

    @property
    def separator_id(self) -> int | None:
        """The id that separates the two texts of a pair (BERT's ``[SEP]``), if the tokenizer has one."""
        return self._tok.sep_token_id

    @property
    def hf(self):
        """The wrapped ``PreTrainedTokenizer``, to hand back with an exported model."""
        return self._tok

    def encode(self, texts: Sequence[str], max_length: int,
               pairs: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self._tok(list(texts), None if pairs is None else list(pairs), truncation=True, max_length=max_length,
                        padding="longest", return_tensors="pt", return_token_type_ids=False)
        return enc["input_ids"].long(), enc["attention_mask"].long()

    def save(self, folder: Path) -> None:
        self._tok.save_pretrained(str(folder))


def load_tokenizer(folder: Path, kind: str) -> Tokenizer:
    kinds = {t.kind: t for t in (TransformersTokenizer,)}
    if kind not in kinds:
        raise ModelError(f"{folder}: unknown tokenizer kind {kind!r} (expected one of {sorted(kinds)}).")
    return kinds[kind].load(folder)


__all__ = ["Tokenizer", "TransformersTokenizer", "load_tokenizer"]

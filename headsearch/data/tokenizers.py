"""Tokenizers: a word-level vocabulary for the built-in encoder, WordPiece files for BERT checkpoints
given a fresh head, and the user's own Hugging Face tokenizer for their classifier.

Each turns a batch of texts (or text pairs) into ``(input_ids, attention_mask)`` padded on the right to
the longest text in the batch and truncated to ``max_length``, and saves itself beside the model's weights.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import torch

from headsearch.errors import ModelError

WORD_VOCAB_FILE = "vocab.json"
HF_TOKENIZER_FILE = "tokenizer.json"


class Tokenizer(Protocol):
    kind: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, texts: Sequence[str], max_length: int,
               pairs: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...

    def save(self, folder: Path) -> None: ...


def _pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, max((len(r) for r in rows), default=1))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


class WordTokenizer:
    """Lower-cased words and punctuation; ids by frequency in the training split. 0 = [PAD], 1 = [UNK]."""

    kind = "word"
    PAD, UNK = "[PAD]", "[UNK]"
    _SPLIT = re.compile(r"\w+|[^\w\s]")

    def __init__(self, vocab: Sequence[str]):
        if list(vocab[:2]) != [self.PAD, self.UNK]:
            raise ModelError("A word vocabulary must start with [PAD], [UNK].")
        self.vocab = tuple(vocab)
        self._index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def build(cls, texts: Iterable[str], *, max_size: int = 20000, min_freq: int = 1) -> WordTokenizer:
        counts = Counter(w for t in texts for w in cls._SPLIT.findall(t.lower()))
        words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        return cls([cls.PAD, cls.UNK, *words[: max_size - 2]])

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        return self._SPLIT.findall(text.lower())

    def encode(self, texts: Sequence[str], max_length: int,
               pairs: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A pair is one sequence: the first text, ``[SEP]`` (unknown to the vocabulary), the second."""
        unk = self._index[self.UNK]
        if pairs is not None:
            texts = [f"{a} [SEP] {b}" for a, b in zip(texts, pairs, strict=True)]
        rows = [[self._index.get(w, unk) for w in self.tokenize(t)][:max_length] for t in texts]
        return _pad(rows, pad_id=0)

    def save(self, folder: Path) -> None:
        (folder / WORD_VOCAB_FILE).write_text(json.dumps({"kind": self.kind, "vocab": list(self.vocab)}))

    @classmethod
    def load(cls, folder: Path) -> WordTokenizer:
        try:
            data = json.loads((folder / WORD_VOCAB_FILE).read_text())
            return cls(data["vocab"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{folder / WORD_VOCAB_FILE}: not a readable word vocabulary ({exc}).") from exc


class WordPieceTokenizer:
    """A Hugging Face fast tokenizer read from ``tokenizer.json`` (or built from a BERT ``vocab.txt``)."""

    kind = "huggingface"

    def __init__(self, tokenizer, source: Path):
        self._tok = tokenizer
        self._source = source
        self._tok.no_padding()
        self._tok.no_truncation()

    @classmethod
    def load(cls, folder: Path) -> WordPieceTokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        file = folder / HF_TOKENIZER_FILE
        try:
            if file.is_file():
                return cls(HFTokenizer.from_file(str(file)), file)
            vocab = folder / "vocab.txt"
            if vocab.is_file():
                from tokenizers.implementations import BertWordPieceTokenizer

                lower = True
                config = folder / "tokenizer_config.json"
                if config.is_file():
                    lower = bool(json.loads(config.read_text()).get("do_lower_case", True))
                return cls(BertWordPieceTokenizer(str(vocab), lowercase=lower)._tokenizer, vocab)
        except Exception as exc:  # tokenizers raises bare Exceptions for malformed files
            raise ModelError(f"{folder}: cannot read the tokenizer ({exc}).") from exc
        raise ModelError(f"{folder}: no tokenizer.json or vocab.txt; a BERT-family model folder needs one.")

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    @property
    def pad_id(self) -> int:
        pad = self._tok.token_to_id("[PAD]")
        return 0 if pad is None else pad

    def encode(self, texts: Sequence[str], max_length: int,
               pairs: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
        rows = [e.ids[:max_length] for e in self._tok.encode_batch(batch)]
        for row in rows:
            # keep [SEP] last when truncating, as BERT was trained
            if len(row) == max_length and self._tok.token_to_id("[SEP]") is not None:
                row[-1] = self._tok.token_to_id("[SEP]")
        return _pad(rows, pad_id=self.pad_id)

    def save(self, folder: Path) -> None:
        self._tok.save(str(folder / HF_TOKENIZER_FILE))


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
    kinds = {t.kind: t for t in (WordTokenizer, WordPieceTokenizer, TransformersTokenizer)}
    if kind not in kinds:
        raise ModelError(f"{folder}: unknown tokenizer kind {kind!r} (expected one of {sorted(kinds)}).")
    return kinds[kind].load(folder)


__all__ = ["Tokenizer", "TransformersTokenizer", "WordTokenizer", "WordPieceTokenizer", "load_tokenizer"]

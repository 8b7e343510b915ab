"""TextDataset: texts (or text pairs) with integer labels, the one shape every loader returns."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from headsearch.errors import DataError


@dataclass(frozen=True)
class TextDataset:
    """Parallel tuples of texts and labels in ``0..num_classes-1``, plus the labels' names. ``pairs``: the
    second text of each example for sentence-pair tasks (NLI, paraphrase), tokenised as a pair."""

    texts: tuple[str, ...]
    labels: tuple[int, ...]
    label_names: tuple[str, ...]
    name: str = "dataset"
    pairs: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(f"{self.name}: {len(self.texts)} texts but {len(self.labels)} labels.")
        if self.pairs is not None and len(self.pairs) != len(self.texts):
            raise DataError(f"{self.name}: {len(self.texts)} texts but {len(self.pairs)} second texts of pairs.")
        bad = [y for y in set(self.labels) if not 0 <= y < len(self.label_names)]
        if bad:
            raise DataError(
                f"{self.name}: labels {sorted(bad)} are outside 0..{len(self.label_names) - 1} "
                f"({len(self.label_names)} label names)."
            )

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def rows(self, idx: Sequence[int]) -> tuple[list[str], list[str] | None]:
        """Texts (and second texts of pairs) of rows ``idx``, what a tokenizer encodes."""
        return [self.texts[i] for i in idx], None if self.pairs is None else [self.pairs[i] for i in idx]

    def head(self, n: int) -> TextDataset:
        """The first ``n`` rows (the loaders keep the files' order, so this is reproducible)."""
        return self.subset(range(min(n, len(self))), f"{self.name}[:{n}]")

    def sample(self, n: int, seed: int = 0) -> TextDataset:
        """``n`` rows drawn without replacement with a fixed seed (all rows if ``n >= len``)."""
        return self.split(n, seed)[0]

    def split(self, n: int, seed: int = 0) -> tuple[TextDataset, TextDataset]:
        """``sample(n, seed)`` and the rows it left out (empty if ``n >= len``), both in file order."""
        if n >= len(self):
            return self, self.subset([], f"{self.name}[none]")
        chosen = set(random.Random(seed).sample(range(len(self)), n))
        rest = [i for i in range(len(self)) if i not in chosen]
        return (self.subset(sorted(chosen), f"{self.name}[sample {n}, seed {seed}]"),
                self.subset(rest, f"{self.name}[rest of sample {n}, seed {seed}]"))

    def subset(self, idx: Sequence[int], name: str) -> TextDataset:
        """Rows ``idx``, in that order."""
        texts, pairs = self.rows(idx)
        return TextDataset(tuple(texts), tuple(self.labels[i] for i in idx), self.label_names, name,
                           None if pairs is None else tuple(pairs))

    def relabelled(self, label_names: tuple[str, ...], mapping: Sequence[int]) -> TextDataset:
        """The same rows with label ``i`` renumbered ``mapping[i]`` under ``label_names`` (a model's order)."""
        return TextDataset(self.texts, tuple(mapping[y] for y in self.labels), label_names, self.name, self.pairs)

    def aligned_to(self, model_labels: Sequence[str]) -> tuple[TextDataset, str]:
        """The rows relabelled in a model's label order, and how labels were matched.

        By name (case-insensitive) first; else, when the data's labels are integers ``0..K-1``, as the
        model's class ids (the model's names may be transformers' ``LABEL_i`` defaults or real names)."""
        model_labels = tuple(model_labels)
        lower = {n.lower(): i for i, n in enumerate(model_labels)}
        if all(n.lower() in lower for n in self.label_names):
            mapping = [lower[n.lower()] for n in self.label_names]
            how = "by name"
        elif all(n.isdigit() and int(n) < len(model_labels) for n in self.label_names):
            mapping = [int(n) for n in self.label_names]
            how = "by class id: " + ", ".join(f"{n} -> {model_labels[int(n)]}" for n in self.label_names)
        else:
            raise DataError(f"{self.name}: the data's labels {list(self.label_names)} do not match the model's "
                            f"{list(model_labels)} (its config.json id2label); name them with data.labels "
                            "(a list in the model's id order, or a mapping from the data's values to the model's names).")
        return self.relabelled(model_labels, mapping), how

    def fingerprint(self) -> str:
        """A content hash: checkpoints trained on this data are reused only while it is unchanged."""
        h = hashlib.sha256()
        h.update("\x1f".join(self.label_names).encode())
        for i, (text, label) in enumerate(zip(self.texts, self.labels, strict=True)):
            pair = "" if self.pairs is None else f"\x1d{self.pairs[i]}"
            h.update(f"{label}\x1f{text}{pair}\x1e".encode())
        return h.hexdigest()[:16]

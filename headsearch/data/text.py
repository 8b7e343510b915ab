"""TextDataset: texts with integer labels, the one shape every loader returns."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from headsearch.errors import DataError


@dataclass(frozen=True)
class TextDataset:
    """Parallel tuples of texts and labels in ``0..num_classes-1``, plus the labels' names."""

    texts: tuple[str, ...]
    labels: tuple[int, ...]
    label_names: tuple[str, ...]
    name: str = "dataset"

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(f"{self.name}: {len(self.texts)} texts but {len(self.labels)} labels.")
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

    def head(self, n: int) -> TextDataset:
        """The first ``n`` rows (the loaders keep the files' order, so this is reproducible)."""
        return TextDataset(self.texts[:n], self.labels[:n], self.label_names, f"{self.name}[:{n}]")

    def sample(self, n: int, seed: int = 0) -> TextDataset:
        """``n`` rows drawn without replacement with a fixed seed (all rows if ``n >= len``)."""
        return self.split(n, seed)[0]

    def split(self, n: int, seed: int = 0) -> tuple[TextDataset, TextDataset]:
        """``sample(n, seed)`` and the rows it left out (empty if ``n >= len``), both in file order."""
        if n >= len(self):
            return self, self._subset([], f"{self.name}[none]")
        chosen = set(random.Random(seed).sample(range(len(self)), n))
        rest = [i for i in range(len(self)) if i not in chosen]
        return (self._subset(sorted(chosen), f"{self.name}[sample {n}, seed {seed}]"),
                self._subset(rest, f"{self.name}[rest of sample {n}, seed {seed}]"))

    def _subset(self, idx: list[int], name: str) -> TextDataset:
        return TextDataset(tuple(self.texts[i] for i in idx), tuple(self.labels[i] for i in idx), self.label_names, name)

    def fingerprint(self) -> str:
        """A content hash: checkpoints trained on this data are reused only while it is unchanged."""
        h = hashlib.sha256()
        h.update("\x1f".join(self.label_names).encode())
        for text, label in zip(self.texts, self.labels, strict=True):
            h.update(f"{label}\x1f{text}\x1e".encode())
        return h.hexdigest()[:16]

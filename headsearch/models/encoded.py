"""A split tokenised once for repeated evaluation: rows sorted by token length, padded per batch.

Sorting keeps short texts from being padded to the longest in the split (SST-2 dev: 25 tokens on
average, 60 at most); padding does not change a row's logits, since padded keys get zero attention
and pooling averages real tokens only.

For scoring in rungs of rows (``counts``), the rows are put in a stratified seeded order (any first share
holds each label in its share of the split) and cut into segments at the rungs, each sorted by length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from headsearch.data.text import TextDataset
from headsearch.errors import DataError
from headsearch.models.headed import HeadedModel
from headsearch.models.text_classifier import TextClassifier


class EncodedSplit:
    """``batches``: ``(input_ids, attention_mask, labels)`` per batch, tokenised by ``clf`` once."""

    def __init__(self, clf: TextClassifier, data: TextDataset, *, batch_size: int = 64, seed: int = 0):
        if len(data) == 0:
            raise DataError(f"{data.name} is empty; evaluation needs at least one example.")
        self.data = data
        self.batch_size = batch_size
        self._ids, self._attn = clf.encode(data.texts, data.pairs)
        self._lengths = self._attn.sum(1)
        self._labels = torch.tensor(data.labels)
        self.order = torch.argsort(self._lengths, stable=True)  # batches hold rows order[0], order[1], ...
        self.batches = self.rebatch(self.order)
        self.seed = seed
        self._segments: dict[tuple[int, ...], list[list[tuple[torch.Tensor, ...]]]] = {}

    def rebatch(self, order: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The rows in ``order`` (row indices of the split), ``batch_size`` per batch, each batch padded to its longest."""
        batches = []
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(1, int(self._lengths[rows].max()))
            batches.append((self._ids[rows, :width], self._attn[rows, :width], self._labels[rows]))
        return batches

    def stratified_order(self) -> torch.Tensor:
        """The split's row indices in a seeded order where every label is spread evenly: a row's key is its
        (shuffled) rank within its label plus a uniform draw, over the label's count, so any first ``n`` rows
        hold each label in proportion, give or take one row."""
        generator = torch.Generator().manual_seed(self.seed)
        keys = torch.empty(len(self._labels), dtype=torch.float64)
        for label in torch.unique(self._labels):
            rows = torch.nonzero(self._labels == label).flatten()
            rank = torch.randperm(len(rows), generator=generator).double()
            keys[rows] = (rank + torch.rand(len(rows), generator=generator, dtype=torch.float64)) / len(rows)
        return torch.argsort(keys, stable=True)

    def segments(self, levels: Sequence[int]) -> list[list[tuple[torch.Tensor, ...]]]:
        """The batches of the rows up to each of ``levels`` (row counts, increasing) and then of the rest: the
        first ``levels[k]`` rows of ``stratified_order`` are in segments ``0..k``; each segment sorted by length.
        Without levels, one segment: ``batches``."""
        levels = tuple(levels)
        if levels not in self._segments:
            if not levels:
                self._segments[levels] = [self.batches]
            else:
                order, cuts = self.stratified_order(), [0, *levels, len(self)]
                parts = [order[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
                self._segments[levels] = [self.rebatch(p[torch.argsort(self._lengths[p], stable=True)]) for p in parts]
        return self._segments[levels]

    @torch.inference_mode()
    def counts(self, model: HeadedModel, levels: Sequence[int] = (), *, start: int = 0) -> Iterator[tuple[int, int]]:
        """``(rows, correct)`` of each segment of ``segments(levels)`` from ``start`` on: its rows and those ``model``
        classifies correctly, yielded as each segment is scored (a consumer that stops iterating scores no more)."""
        model.eval()
        device = next(model.parameters()).device
        for segment in self.segments(levels)[start:]:
            rows = correct = 0
            for ids, attn, labels in segment:
                logits = model(ids.to(device), attn.to(device))
                correct += int((logits.argmax(-1).cpu() == labels).sum())
                rows += len(labels)
            yield rows, correct

    def __len__(self) -> int:
        return len(self.data)

    @torch.inference_mode()
    def accuracy(self, model: HeadedModel, gates: torch.Tensor | None = None) -> float:
        """Fraction of rows ``model`` classifies correctly, with optional ``[layers, heads]`` gates."""
        model.eval()
        device = next(model.parameters()).device
        gates = None if gates is None else gates.to(device)
        correct = 0
        for ids, attn, labels in self.batches:
            logits = model(ids.to(device), attn.to(device), gates=gates)
            correct += int((logits.argmax(-1).cpu() == labels).sum())
        return correct / len(self.data)

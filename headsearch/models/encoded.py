"""A split tokenised once for repeated evaluation: rows sorted by token length, padded per batch.

Sorting keeps short texts from being padded to the longest in the split (SST-2 dev: 25 tokens on
average, 60 at most); padding does not change a row's logits, since padded keys get zero attention
and pooling averages real tokens only.
"""

from __future__ import annotations

import torch

from headsearch.data.text import TextDataset
from headsearch.errors import DataError
from headsearch.models.headed import HeadedModel
from headsearch.models.text_classifier import TextClassifier


class EncodedSplit:
    """``batches``: ``(input_ids, attention_mask, labels)`` per batch, tokenised by ``clf`` once."""

    def __init__(self, clf: TextClassifier, data: TextDataset, *, batch_size: int = 64):
        if len(data) == 0:
            raise DataError(f"{data.name} is empty; evaluation needs at least one example.")
        self.data = data
        self.batch_size = batch_size
        self._ids, self._attn = clf.encode(data.texts, data.pairs)
        self._lengths = self._attn.sum(1)
        self._labels = torch.tensor(data.labels)
        self.order = torch.argsort(self._lengths, stable=True)  # batches hold rows order[0], order[1], ...
        self.batches = self.rebatch(self.order)

    def rebatch(self, order: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The rows in ``order`` (row indices of the split), ``batch_size`` per batch, each batch padded to its longest."""
        batches = []
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(1, int(self._lengths[rows].max()))
            batches.append((self._ids[rows, :width], self._attn[rows, :width], self._labels[rows]))
        return batches

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

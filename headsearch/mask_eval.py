"""Accuracy and loss of many head masks on one fixed set of examples, computed on the dense model.

Searches that score thousands of masks (A*, accuracy curves) use this instead of pruning a model per
mask: a binary gate and the structurally pruned model give the same logits (the HeadedModel
contract), and gating costs no copy. Two savings, both exact:

- **prefix reuse**: masks are scored against a reference mask (in a search, the parent state); a mask
  that first differs from it in layer ``l`` restarts the forward pass from the reference's token states
  entering layer ``l``, since the layers before ``l`` see the same gates;
- **several masks per pass**: masks that restart at the same layer are stacked along the batch (one
  copy of the examples per mask, per-example gates) up to ``rows_per_pass`` rows.

Prefix reuse needs a model that runs layer by layer (``supports_prefix_reuse``: headsearch's own
encoder); a Hugging Face model runs whole forward passes, masks still stacked along the batch.

Examples are tokenised once (``EncodedSplit``: sorted by length, padded per batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from headsearch.data.text import TextDataset
from headsearch.errors import HeadConfigError
from headsearch.head_scores import gradient_importance
from headsearch.models.encoded import EncodedSplit
from headsearch.models.text_classifier import TextClassifier


@dataclass(frozen=True)
class MaskScore:
    accuracy: float
    loss: float  # mean cross-entropy; breaks ties between masks of equal accuracy


class MaskEvaluator:
    """Scores head masks ``[layers, heads]`` (1 keeps a head, 0 removes it) of ``clf`` on ``data``."""

    def __init__(self, clf: TextClassifier, data: TextDataset, *, batch_size: int = 64, rows_per_pass: int = 256,
                 reuse_prefix: bool = True):
        if rows_per_pass < 1:
            raise ValueError(f"rows_per_pass must be >= 1. Got {rows_per_pass}.")
        self.clf = clf
        self.data = data
        self.rows_per_pass = rows_per_pass
        self.reuse_prefix = reuse_prefix and clf.model.supports_prefix_reuse
        self.evaluations = 0  # masks scored so far
        self._split = EncodedSplit(clf, data, batch_size=batch_size)

    @property
    def num_layers(self) -> int:
        return self.clf.model.num_layers

    @property
    def num_heads(self) -> int:
        return self.clf.model.num_heads

    def _check(self, mask: torch.Tensor) -> torch.Tensor:
        shape = (self.num_layers, self.num_heads)
        if tuple(mask.shape) != shape:
            raise HeadConfigError(f"A head mask must have shape [layers, heads] = {list(shape)}. Got {list(mask.shape)}.")
        return mask.float()

    @torch.inference_mode()
    def score(self, masks: Sequence[torch.Tensor], reference: torch.Tensor | None = None) -> list[MaskScore]:
        """Accuracy and mean loss of every mask; ``reference`` (default: all heads) is the prefix to reuse."""
        masks = [self._check(m) for m in masks]
        if not masks:
            return []
        model = self.clf.model
        model.eval()
        L = self.num_layers
        ref = torch.ones(L, self.num_heads) if reference is None else self._check(reference)
        if self.reuse_prefix:
            differs = [(m != ref).any(dim=1) for m in masks]
            starts = [int(d.nonzero()[0]) if d.any() else L for d in differs]
        else:
            starts = [0] * len(masks)
        groups: dict[int, list[int]] = {}
        for j, start in enumerate(starts):
            groups.setdefault(start, []).append(j)
        correct = torch.zeros(len(masks))
        loss = torch.zeros(len(masks))
        for ids, attn, labels in self._split.batches:
            n = ids.shape[0]
            if self.reuse_prefix:
                states = [model.embeddings(ids)]  # states[l]: the reference's token states entering layer l
                for layer in range(max(starts)):
                    states.append(model.run_layers(states[layer], attn, ref, start=layer, stop=layer + 1))
            per_pass = max(1, self.rows_per_pass // n)
            for start, members in groups.items():
                for c in range(0, len(members), per_pass):
                    chunk = members[c:c + per_pass]
                    k = len(chunk)
                    a = attn.repeat(k, 1)
                    gates = torch.stack([masks[j] for j in chunk]).repeat_interleave(n, dim=0)
                    if self.reuse_prefix:
                        x = states[start].repeat(k, 1, 1)
                        logits = model.classify(model.run_layers(x, a, gates, start=start), a)
                    else:
                        logits = model(ids.repeat(k, 1), a, gates=gates)
                    logits = logits.view(k, n, -1)
                    correct[chunk] += (logits.argmax(-1) == labels).sum(1).float()
                    loss[chunk] += F.cross_entropy(logits.transpose(1, 2), labels.expand(k, n), reduction="none").sum(1)
        self.evaluations += len(masks)
        total = len(self.data)
        return [MaskScore(c.item() / total, lo.item() / total) for c, lo in zip(correct, loss, strict=True)]

    def importance(self, mask: torch.Tensor) -> torch.Tensor:
        """Michel et al. gradient importance of every head at ``mask``, on this evaluator's examples."""
        return gradient_importance(self.clf, self.data, mask=self._check(mask))

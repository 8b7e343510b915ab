"""Head importance by gradient (Michel, Levy, Neubig 2019, "Are Sixteen Heads Really Better than One?").

``I_h = E_x |dL(x)/d xi_h|``: every example gets its own gate ``xi`` per head, a tensor of ones (or the mask)
with ``requires_grad``, so one backward pass per batch gives each example's gradient and the absolute
value is taken per example, as the paper's formula reads. Then, as in the paper's code, each layer is
divided by its L2 norm. (The paper's code, like HF's ``run_bertology.py``, takes the absolute value of each
batch's summed gradient, which makes the scores depend on how rows are batched; per example they do not,
so batches are sorted by length and padded to their longest row: on SST-2 training rows that runs 0.39 of
the token positions of batches in data order.) Heads already masked (gate 0) score what their gradient
says at that mask, which is what iterative re-scoring uses.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from headsearch.data.text import TextDataset
from headsearch.models.encoded import EncodedSplit
from headsearch.models.text_classifier import TextClassifier


def gradient_importance(clf: TextClassifier, data: TextDataset, *, mask: torch.Tensor | None = None,
                        normalize_layers: bool = True, batch_size: int = 32) -> torch.Tensor:
    """``[layers, heads]`` importance scores of ``clf``'s dense heads on ``data`` at gate values ``mask``."""
    model = clf.model
    device = next(model.parameters()).device
    base = torch.ones(model.num_layers, model.num_heads) if mask is None else mask.detach().float()
    base = base.to(device)
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)  # only the gates' gradient is needed
    model.eval()
    total = torch.zeros(base.shape, dtype=torch.float64, device=device)  # a sum that does not depend on row order
    try:
        with torch.enable_grad():
            for ids, attn, labels in EncodedSplit(clf, data, batch_size=batch_size).batches:
                gates = base.expand(len(labels), *base.shape).clone().requires_grad_(True)  # one gate per example
                logits = model(ids.to(device), attn.to(device), gates=gates)
                loss = F.cross_entropy(logits, labels.to(device), reduction="sum")
                (grad,) = torch.autograd.grad(loss, gates)  # row r's loss depends on row r's gates only
                total += grad.abs().sum(0).double()
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    scores = (total / max(1, len(data))).float().cpu()
    return layer_normalized(scores) if normalize_layers else scores


def layer_normalized(scores: torch.Tensor) -> torch.Tensor:
    """``[layers, heads]`` scores with each layer divided by its L2 norm (the paper code's normalisation)."""
    return scores / scores.norm(dim=1, keepdim=True).clamp(min=1e-20)

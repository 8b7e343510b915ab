"""Head importance by gradient (Michel, Levy, Neubig 2019, "Are Sixteen Heads Really Better than One?").

``I_h = E_x |dL(x)/d xi_h|``: the gate ``xi`` of each head is a tensor of ones with ``requires_grad``;
its gradient magnitude is accumulated over batches (one forward/backward pass each), then, as in the
paper's code, each layer is divided by its L2 norm. As in that code (and HF's ``run_bertology.py``)
the absolute value is taken per batch of the batch's summed gradient, not per example as the paper's
formula reads; scores are divided by the number of examples. Heads already masked (gate 0) score what their
gradient says at that mask, which is what iterative re-scoring uses.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from headsearch.data.text import TextDataset
from headsearch.models.text_classifier import TextClassifier


def gradient_importance(clf: TextClassifier, data: TextDataset, *, mask: torch.Tensor | None = None,
                        normalize_layers: bool = True, batch_size: int = 32) -> torch.Tensor:
    """``[layers, heads]`` importance scores of ``clf``'s dense heads on ``data`` at gate values ``mask``."""
    model = clf.model
    gates = (torch.ones(model.num_layers, model.num_heads) if mask is None else mask.detach().float().clone())
    gates.requires_grad_(True)
    labels = torch.tensor(data.labels)
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)  # only the gates' gradient is needed
    model.eval()
    total = torch.zeros_like(gates)
    try:
        with torch.enable_grad():
            for start in range(0, len(data), batch_size):
                ids, attn = clf.encode_rows(data, range(start, min(start + batch_size, len(data))))
                loss = F.cross_entropy(model(ids, attn, gates=gates), labels[start:start + batch_size], reduction="sum")
                (grad,) = torch.autograd.grad(loss, gates)
                total += grad.abs()
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    scores = total / max(1, len(data))
    if normalize_layers:
        scores = scores / scores.norm(dim=1, keepdim=True).clamp(min=1e-20)
    return scores.detach()

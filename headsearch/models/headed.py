"""The HeadedModel contract: what every strategy, evaluator and exporter may rely on, whatever the model.

One implementation: ``TransformersClassifier`` (``headsearch.models.hf``), the user's Hugging Face
``*ForSequenceClassification`` model as it is; the built-in model and base checkpoints given a fresh head
are such models too. Heads are indexed by the dense
model's *units* (a query head, or a key/value group for grouped-query attention searched by group);
a pruned model keeps answering in those indices, so ``[layers, num_heads]`` gates still apply to it.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from headsearch.errors import HeadConfigError
from headsearch.heads import HeadConfig
from headsearch.models.shape import ModelShape

# Gates computed during the forward pass from each layer's input (per-input routing, headsearch.models.routing):
# called as gate_fn(layer_index, layer_input [batch, seq, hidden], attention_mask) -> gates [batch, heads].
GateFn = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class HeadRecord:
    """What ``record_heads`` captured for one forward pass, per layer.

    ``attention[l]``: ``[batch, kept_heads, seq, seq]`` probabilities (only when asked; for a unit of several
    query heads, their mean). ``context[l]``: ``[batch, kept_heads, seq, head_dim]``, each head's output
    (after its gate), before the output projection. ``heads[l]``: the kept heads' indices, in the same order.
    """

    want_attention: bool
    context: list[torch.Tensor] = field(default_factory=list)
    attention: list[torch.Tensor] = field(default_factory=list)
    heads: list[tuple[int, ...]] = field(default_factory=list)


class HeadedModel(nn.Module, metaclass=ABCMeta):
    """A text classifier whose attention heads can be gated, observed and cut out.

    ``forward(input_ids, attention_mask, gates)`` returns logits ``[batch, classes]``; ``gates`` is
    ``[layers, heads]`` or ``[batch, layers, heads]`` (binary or soft; each head's output is multiplied by
    its gate), or a ``GateFn``. A masked forward and ``prune(config)`` give the same logits (to float
    tolerance): pruning is structural, the removed heads' weights are cut out.
    """

    can_skip_attention: ClassVar[bool] = True  # a layer may keep zero heads

    @property
    @abstractmethod
    def shape(self) -> ModelShape:
        """The dense model's shape, for the cost model."""

    @property
    def num_layers(self) -> int:
        return self.shape.num_layers

    @property
    def num_heads(self) -> int:
        return self.shape.num_heads

    @property
    def head_dim(self) -> int:
        return self.shape.head_dim

    @property
    @abstractmethod
    def head_config(self) -> HeadConfig:
        """The heads this model physically has (dense unless it was pruned)."""

    @abstractmethod
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                gates: torch.Tensor | GateFn | None = None) -> torch.Tensor: ...

    @abstractmethod
    def prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, gates: torch.Tensor,
               layers: int) -> list[Any]:
        """What the first ``layers`` layers output for these rows under ``gates`` (element ``l``: layer ``l``'s
        output, in whatever form ``resume`` takes it); the forward pass stops after layer ``layers - 1``."""

    @abstractmethod
    def resume(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, gates: torch.Tensor, entering: Any,
               start: int, *, copies: int = 1) -> torch.Tensor:
        """Logits of ``copies`` copies of some rows stacked along the batch (``input_ids`` and the rest hold
        all of them), resumed at layer ``start`` from ``entering``: the rows' ``prefix(...)[start - 1]``.
        Exact when ``gates`` equal the prefix's gates on layers ``0..start-1`` (mask search reuses the
        parent's prefix for children that first differ from it at ``start``: ``headsearch.analysis.mask_eval``)."""

    @abstractmethod
    def record_heads(self, *, attention: bool = False) -> AbstractContextManager[HeadRecord]:
        """Capture every layer's per-head outputs (and attention maps) during forward passes in the block."""

    @abstractmethod
    def prune(self, config: HeadConfig) -> HeadedModel:
        """A structurally smaller copy keeping ``config``'s heads; this model is left unchanged."""

    def layout(self, config: HeadConfig) -> tuple:
        """What the speed of this model pruned to ``config`` depends on: configurations of equal layout run
        the same shapes through the same kernels, whichever heads they keep and whatever their weights, so
        a latency measured for one prices them all. Here: heads kept per layer."""
        return tuple(len(kept) for kept in config.kept)

    @abstractmethod
    def reinitialized(self, seed: int) -> HeadedModel:
        """A fresh random initialisation of the same (dense) architecture, for training from scratch."""

    @abstractmethod
    def is_classifier_parameter(self, name: str) -> bool:
        """Whether parameter ``name`` belongs to the classification head (trained alone with ``freeze_encoder``)."""

    def check_gates(self, gates: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """``gates`` as ``[batch or 1, layers, heads]``, or a one-line error naming the expected shapes."""
        if gates is None:
            return None
        shape = (self.num_layers, self.num_heads)
        if gates.dim() == 2 and tuple(gates.shape) == shape:
            return gates.unsqueeze(0)
        if gates.dim() == 3 and tuple(gates.shape) == (batch, *shape):
            return gates
        raise HeadConfigError(
            f"Gates must have shape [layers, heads] = {list(shape)} or [batch, layers, heads] = "
            f"{[batch, *shape]}. Got {list(gates.shape)}."
        )

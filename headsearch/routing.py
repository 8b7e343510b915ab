"""Per-input head budgets (BudgetFormer, ALGORITHMS.md section 4): a router that picks, for each input
and layer, how many heads to run and which, and a runtime that computes only those heads.

``HeadRouter``, per layer ``i`` with input ``x`` (mean-pooled over real tokens to ``z``):

- budget controller: ``s = s_min + (s_max - s_min) * sigmoid(MLP(z))``, one MLP per layer, or one
  global MLP applied to the embeddings (layer 0's input) whose ``s`` every layer uses;
- relevance scorer: a linear map ``z -> [heads]`` logits, relevance ``r = softmax(logits / tau)``;
- hard choice: the top ``k = ceil(s * H)`` heads by logit (``floor``, at least 1, as an option).

Gradients through the discrete choice (the paper leaves this open): a straight-through soft rank
mask. Soft ranks ``rank_h = 1 + sum_j sigmoid((l_j - l_h) / tau)`` are differentiable in the logits,
the soft mask ``m_h = sigmoid(s * H - rank_h + 1/2)`` in ``s`` and in the ranks; the forward pass uses
the hard top-k mask and the backward pass the soft mask's gradient (``hard + soft - soft.detach()``).
Exploration: Gaussian noise on the logits and the temperature ``tau`` are set by the trainer
(``headsearch.strategies.budgetformer``), annealed from exploration to exploitation.

``RoutedClassifier`` is the inference runtime: at every layer it groups the batch's examples by the
head set the router chose and runs each group through a structurally pruned copy of the layer's
attention (cached per head set), so smaller budgets compute less. Its logits equal the masked
forward ``model(ids, mask, gates=router)`` (the tests check it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from headsearch.errors import ModelError
from headsearch.models.classifier import EncoderSpec, HeadedClassifier, SelfAttention
from headsearch.models.shape import ModelShape

ROUNDINGS = ("ceil", "floor")


@dataclass(frozen=True, kw_only=True)
class RouterSpec:
    hidden_size: int
    num_layers: int
    num_heads: int
    per_layer: bool = True
    s_min: float = 0.1
    s_max: float = 0.9
    width: int = 64
    rounding: str = "ceil"

    def __post_init__(self) -> None:
        if not 0.0 < self.s_min <= self.s_max <= 1.0:
            raise ModelError(f"A router needs 0 < s_min <= s_max <= 1. Got s_min={self.s_min}, s_max={self.s_max}.")
        if self.rounding not in ROUNDINGS:
            raise ModelError(f"The 'rounding' of a router must be one of {ROUNDINGS}. Got {self.rounding!r}.")

    @classmethod
    def for_model(cls, shape: ModelShape, **settings) -> RouterSpec:
        return cls(hidden_size=shape.hidden_size, num_layers=shape.num_layers, num_heads=shape.num_heads, **settings)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RoutingTrace:
    """What the router chose during traced forward passes: per layer, ``s [batch]`` and ``keep [batch, heads]``."""

    budgets: list[list[torch.Tensor]] = field(default_factory=list)  # [layer][call] -> [batch]
    keep: list[list[torch.Tensor]] = field(default_factory=list)

    def add(self, layer: int, s: torch.Tensor, keep: torch.Tensor) -> None:
        while len(self.budgets) <= layer:
            self.budgets.append([])
            self.keep.append([])
        self.budgets[layer].append(s.detach().float().cpu())
        self.keep[layer].append(keep.detach().bool().cpu())

    def s(self) -> torch.Tensor:
        """``[examples, layers]`` budgets."""
        return torch.stack([torch.cat(calls) for calls in self.budgets], dim=1)

    def kept(self) -> torch.Tensor:
        """``[examples, layers, heads]`` boolean choices."""
        return torch.stack([torch.cat(calls) for calls in self.keep], dim=1)


class HeadRouter(nn.Module):
    """Budget controller(s) and relevance scorers; called as a ``GateFn`` it returns ``[batch, heads]`` gates."""

    def __init__(self, spec: RouterSpec):
        super().__init__()
        self.spec = spec
        h, w = spec.hidden_size, spec.width
        n = spec.num_layers if spec.per_layer else 1
        self.controllers = nn.ModuleList(nn.Sequential(nn.Linear(h, w), nn.GELU(), nn.Linear(w, 1)) for _ in range(n))
        self.scorers = nn.ModuleList(nn.Linear(h, spec.num_heads) for _ in range(spec.num_layers))
        for c in self.controllers:  # start near s_max: exploration begins with most heads on
            nn.init.constant_(c[-1].bias, 2.0)
        self.temperature = 1.0  # tau; set by the trainer's schedule
        self.noise = 0.0  # std of the exploration noise on the logits (training only)
        self.forced_budget: float | None = None
        self.trace: RoutingTrace | None = None
        self._terms: list[tuple[torch.Tensor, torch.Tensor]] = []  # (s, r) of the batch being trained
        self._global_s: torch.Tensor | None = None

    def budget(self, layer: int, z: torch.Tensor) -> torch.Tensor:
        """``s`` per example ``[batch]`` at ``layer`` (``z``: pooled layer input)."""
        if self.forced_budget is not None:
            return torch.full((z.shape[0],), self.forced_budget, dtype=z.dtype, device=z.device)
        if not self.spec.per_layer and layer > 0:
            assert self._global_s is not None, "a global router is called from layer 0 onwards"
            return self._global_s
        lo, hi = self.spec.s_min, self.spec.s_max
        s = lo + (hi - lo) * torch.sigmoid(self.controllers[0 if not self.spec.per_layer else layer](z).squeeze(-1))
        if not self.spec.per_layer:
            self._global_s = s
        return s

    def count(self, s: torch.Tensor) -> torch.Tensor:
        """Heads to run per example: ``ceil(s * H)`` (or floor), within ``1..H``."""
        x = s.detach() * self.spec.num_heads
        k = torch.ceil(x - 1e-6) if self.spec.rounding == "ceil" else torch.floor(x + 1e-6)
        return k.clamp(1, self.spec.num_heads).long()

    def _scores(self, layer: int, x: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``s [batch]`` and head logits ``[batch, heads]`` (with exploration noise in training)."""
        mask = attention_mask.to(x.dtype)[..., None]
        z = (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        s = self.budget(layer, z)
        logits = self.scorers[layer](z)
        if self.training and self.noise > 0:
            logits = logits + self.noise * torch.randn_like(logits)
        return s, logits

    @staticmethod
    def _ranking(logits: torch.Tensor) -> torch.Tensor:
        """Heads by decreasing logit, ties to the lower index (one rule for the masked and the runtime path)."""
        return logits.detach().argsort(dim=-1, descending=True, stable=True)

    def forward(self, layer: int, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Gates ``[batch, heads]``: the hard top-k mask (straight-through soft rank mask in training)."""
        s, logits = self._scores(layer, x, attention_mask)
        H = self.spec.num_heads
        on = (torch.arange(H, device=x.device) < self.count(s)[:, None]).to(x.dtype)
        hard = torch.zeros_like(logits).scatter_(-1, self._ranking(logits), on)
        if self.trace is not None:
            self.trace.add(layer, s, hard)
        if not self.training:
            return hard
        tau = self.temperature
        # soft rank of head h: 1 + #heads j scoring above it, each comparison a sigmoid (the self-comparison's 1/2 removed)
        rank = 0.5 + torch.sigmoid((logits[:, None, :] - logits[:, :, None]) / tau).sum(-1)
        soft = torch.sigmoid(s[:, None] * H - rank + 0.5)
        self._terms.append((s, torch.softmax(logits / tau, dim=-1)))
        return hard + soft - soft.detach()

    def choose(self, layer: int, x: torch.Tensor, attention_mask: torch.Tensor) -> list[tuple[int, ...]]:
        """Inference: each row's chosen heads, ascending (the same heads ``forward``'s mask keeps)."""
        s, logits = self._scores(layer, x, attention_mask)
        counts, ranking = self.count(s).tolist(), self._ranking(logits).tolist()
        heads = [tuple(sorted(order[:k])) for order, k in zip(ranking, counts, strict=True)]
        if self.trace is not None:
            keep = torch.zeros(len(heads), self.spec.num_heads, dtype=torch.bool)
            for row, chosen in enumerate(heads):
                keep[row, list(chosen)] = True
            self.trace.add(layer, s, keep)
        return heads

    def penalty(self, budget_weight: float, entropy_weight: float) -> torch.Tensor:
        """Cost of the batch just run in training mode: ``budget_weight * mean(s) + entropy_weight * mean H(r)``
        (entropy in nats, over layers and examples); clears the batch's terms."""
        if not self._terms:
            raise ModelError("HeadRouter.penalty() needs a forward pass in training mode first.")
        s = torch.stack([t[0] for t in self._terms])
        r = torch.stack([t[1] for t in self._terms])
        entropy = -(r * torch.log(r.clamp_min(1e-12))).sum(-1)
        self._terms.clear()
        return budget_weight * s.mean() + entropy_weight * entropy.mean()

    @contextmanager
    def forcing(self, budget: float | None) -> Iterator[None]:
        """Every example gets budget ``s = budget`` (the scorers still pick which heads) inside the block."""
        if budget is not None and not 0.0 < budget <= 1.0:
            raise ModelError(f"A forced budget must be in (0, 1]. Got {budget!r}.")
        previous, self.forced_budget = self.forced_budget, budget
        try:
            yield
        finally:
            self.forced_budget = previous

    @contextmanager
    def tracing(self) -> Iterator[RoutingTrace]:
        previous, self.trace = self.trace, RoutingTrace()
        try:
            yield self.trace
        finally:
            self.trace = previous


class RoutedClassifier(nn.Module):
    """Inference runtime of a routed model: per layer, each example's chosen heads and only those are computed."""

    def __init__(self, model: HeadedClassifier, router: HeadRouter, *, cache_size: int = 512):
        super().__init__()
        if model.head_config.total_kept != model.num_layers * model.num_heads:
            raise ModelError("A routed model needs every head present (route a dense model, not a pruned one).")
        self.model, self.router = model, router
        self.cache_size = cache_size
        self._pruned: OrderedDict[tuple[int, tuple[int, ...]], tuple[tuple[int, ...], SelfAttention]] = OrderedDict()

    @property
    def spec(self) -> EncoderSpec:
        return self.model.spec

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                gates: torch.Tensor | None = None) -> torch.Tensor:
        if gates is not None:
            raise ModelError("A routed model chooses its own heads per input; it takes no gates.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        model = self.model
        x = model.embeddings(input_ids)
        bias = model.mask_bias(attention_mask, x.dtype)
        for i, layer in enumerate(model.layers):
            x = layer.finish(x, self._attend(i, layer.attention, x, bias, self.router.choose(i, x, attention_mask)))
        return model.classify(x, attention_mask)

    def _attend(self, layer: int, attention: SelfAttention, x: torch.Tensor, bias: torch.Tensor,
                chosen: list[tuple[int, ...]]) -> torch.Tensor:
        groups: dict[tuple[int, ...], list[int]] = {}
        for row, heads in enumerate(chosen):
            groups.setdefault(heads, []).append(row)
        if len(groups) == 1:
            return self._module(layer, attention, chosen[0])(x, bias, None)
        out = torch.empty_like(x)
        for heads, rows in groups.items():
            idx = torch.tensor(rows, device=x.device)
            part = self._module(layer, attention, heads)(x.index_select(0, idx), bias.index_select(0, idx), None)
            out.index_copy_(0, idx, part)
        return out

    def _module(self, layer: int, attention: SelfAttention, heads: tuple[int, ...]) -> SelfAttention:
        """The layer's attention cut down to ``heads``, cached; rebuilt when the weights changed since
        (``Tensor._version`` counts in-place updates such as optimiser steps)."""
        key = (layer, heads)
        # an optimiser step updates weights and biases together: the four weights' versions suffice
        version = (attention.query.weight._version, attention.key.weight._version, attention.value.weight._version,
                   attention.output.weight._version)
        hit = self._pruned.get(key)
        if hit is None or hit[0] != version:
            hit = self._pruned[key] = (version, attention.pruned(heads).eval())
            while len(self._pruned) > self.cache_size:
                self._pruned.popitem(last=False)
        self._pruned.move_to_end(key)
        return hit[1]


def router_flops(spec: RouterSpec) -> int:
    """FLOPs per example of the router (controllers and scorers; pooling not counted, as in ``cost.flops``)."""
    h, w, H = spec.hidden_size, spec.width, spec.num_heads
    controllers = (spec.num_layers if spec.per_layer else 1) * (2 * h * w + 2 * w)
    return controllers + spec.num_layers * 2 * h * H


class RouterTraining:
    """The router as ``TrainableGates`` for ``models.training.train``, with the exploration->exploitation
    schedule: over the first ``explore_fraction`` of training the temperature falls geometrically from
    ``tau_start`` to ``tau_end`` and the logit noise linearly from ``noise`` to 0; both then stay put.
    The penalty is ``budget_weight * mean(s) + entropy_weight * mean entropy(r)``: the budget term is
    the compute pressure (``s`` is kept in ``[s_min, s_max]`` by construction, so the paper's hinge
    on those bounds is never active and is left out); the entropy term makes relevance decisive."""

    def __init__(self, router: HeadRouter, *, learning_rate: float = 1e-3, budget_weight: float = 0.1,
                 entropy_weight: float = 0.01, tau_start: float = 2.0, tau_end: float = 0.2, noise: float = 0.5,
                 explore_fraction: float = 0.5):
        if not (tau_start > 0 and tau_end > 0 and 0 < explore_fraction <= 1 and noise >= 0):
            raise ModelError("RouterTraining needs tau_start, tau_end > 0, noise >= 0 and explore_fraction in (0, 1].")
        self.router, self.learning_rate = router, learning_rate
        self.budget_weight, self.entropy_weight = budget_weight, entropy_weight
        self.tau_start, self.tau_end, self.noise, self.explore_fraction = tau_start, tau_end, noise, explore_fraction

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.router.parameters()

    def schedule(self, progress: float) -> tuple[float, float]:
        """``(temperature, noise)`` at ``progress`` (fraction of training done)."""
        a = min(max(progress, 0.0) / self.explore_fraction, 1.0)
        return self.tau_start * (self.tau_end / self.tau_start) ** a, self.noise * (1.0 - a)

    def draw(self, progress: float) -> HeadRouter:
        self.router.train()
        self.router.temperature, self.router.noise = self.schedule(progress)
        return self.router

    def penalty(self) -> torch.Tensor:
        return self.router.penalty(self.budget_weight, self.entropy_weight)

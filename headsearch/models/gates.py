"""Learned head gates: a static gate per budget, and budget-conditioned monotone gates (one checkpoint
for every budget). ALGORITHMS.md section 5 (Budgeted Attention Allocation, Nidhi 2026).

- ``StaticGates``: hard-concrete gates (L0 regularisation, Louizos, Welling, Kingma 2018; used for
  heads by Voita et al. 2019). Training samples stochastic gates in [0, 1] with exact zeros and ones;
  the penalty is ``weight * relu(C - b)^2 + weight * relu(C - b)`` on ``C``, the expected fraction of
  heads whose gate is non-zero, so the gates are pushed until their mass meets the budget ``b`` and
  then left to the task loss. Hardening keeps the heads with the largest ``log_alpha``.
- ``BudgetGates``: ``g(b) = sigmoid(alpha + softplus(beta) * logit(b))`` per head, monotone in ``b``.
  Each batch draws one budget; the penalty is ``mass_weight * C + overshoot_weight * relu(C - b)^2`` with
  ``C`` the mean gate (the paper's loss form). Soft gates throughout training.

Hardening, for both, uses one **order** of the heads and keeps its first ``max(layers, round(b * N))``
heads: first every layer's leading head (so each layer keeps at least one), then the rest. For
budget-conditioned gates the order is by the budget at which a head's gate crosses 1/2
(``b* = sigmoid(-alpha / softplus(beta))``, earliest first) instead of ranking ``g(b)`` anew at every
``b`` as the paper does: a single order makes the kept sets nested across budgets (a head kept at
``b1`` is kept at every ``b2 > b1``) and is what an export records so that a deployment picks ``b``
at load time. The realised count is exactly ``max(layers, round(b * N))``.
"""

from __future__ import annotations

import math
import random

import torch
from torch import nn
from torch.nn import functional as F

# hard-concrete stretch and temperature (Louizos et al. 2018)
_GAMMA, _ZETA, _BETA = -0.1, 1.1, 2.0 / 3.0


def deployment_order(scores: torch.Tensor) -> list[tuple[int, int]]:
    """Heads ``(layer, head)`` in keeping order for ``[layers, heads]`` scores (higher kept first):
    every layer's best head first (best first), then all others by score."""
    L, H = scores.shape
    flat = sorted(((float(scores[i, h]), i, h) for i in range(L) for h in range(H)), key=lambda t: (-t[0], t[1], t[2]))
    leaders: dict[int, tuple[int, int]] = {}
    for _, i, h in flat:
        leaders.setdefault(i, (i, h))
    first = [(i, h) for _, i, h in flat if leaders[i] == (i, h)]
    return first + [(i, h) for _, i, h in flat if leaders[i] != (i, h)]


class StaticGates(nn.Module):
    """Hard-concrete gates for one target budget."""

    def __init__(self, num_layers: int, num_heads: int, budget: float, *, weight: float = 5.0,
                 learning_rate: float = 0.1, init: float = 3.0, seed: int = 0):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.full((num_layers, num_heads), init))
        self.budget, self.weight, self.learning_rate = budget, weight, learning_rate
        self._generator = torch.Generator().manual_seed(seed)

    def expected_mass(self) -> torch.Tensor:
        """Expected fraction of heads with a non-zero gate (the L0 norm / N)."""
        return torch.sigmoid(self.log_alpha - _BETA * math.log(-_GAMMA / _ZETA)).mean()

    def draw(self, progress: float = 0.0) -> torch.Tensor:
        u = torch.rand(self.log_alpha.shape, generator=self._generator).clamp(1e-6, 1 - 1e-6)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + self.log_alpha) / _BETA)
        return (s * (_ZETA - _GAMMA) + _GAMMA).clamp(0.0, 1.0)

    def penalty(self) -> torch.Tensor:
        over = F.relu(self.expected_mass() - self.budget)
        return self.weight * (over + over ** 2)

    def order(self) -> list[tuple[int, int]]:
        return deployment_order(self.log_alpha.detach())


class BudgetGates(nn.Module):
    """Budget-conditioned monotone gates ``g(b) = sigmoid(alpha + softplus(beta) * logit(b))``."""

    def __init__(self, num_layers: int, num_heads: int, *, budgets: tuple[float, float] = (0.1, 0.95),
                 mass_weight: float = 0.1, overshoot_weight: float = 1.0, learning_rate: float = 0.1,
                 init: float = 3.0, seed: int = 0):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((num_layers, num_heads), init))  # starts dense: every gate near 1
        self.beta = nn.Parameter(torch.zeros(num_layers, num_heads))
        self.budgets, self.mass_weight, self.overshoot_weight = budgets, mass_weight, overshoot_weight
        self.learning_rate = learning_rate
        self._rng = random.Random(seed)
        self._budget, self._drawn = 1.0, self.gates(1.0)  # the batch's budget and gates, set by draw()

    def gates(self, budget: float) -> torch.Tensor:
        b = torch.tensor(budget).clamp(1e-4, 1 - 1e-4)
        return torch.sigmoid(self.alpha + F.softplus(self.beta) * torch.logit(b))

    def draw(self, progress: float = 0.0) -> torch.Tensor:
        self._budget = self._rng.uniform(*self.budgets)
        self._drawn = self.gates(self._budget)
        return self._drawn

    def penalty(self) -> torch.Tensor:
        mass = self._drawn.mean()
        return self.mass_weight * mass + self.overshoot_weight * F.relu(mass - self._budget) ** 2

    def crossing_budgets(self) -> torch.Tensor:
        """``[layers, heads]``: the budget at which each gate reaches 1/2 (lower = kept earlier)."""
        return torch.sigmoid(-self.alpha.detach() / F.softplus(self.beta.detach()))

    def order(self) -> list[tuple[int, int]]:
        return deployment_order(-self.crossing_budgets())

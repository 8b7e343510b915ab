"""The light core every layer shares: what a strategy proposes (``Candidate``) and the objectives' names and
directions. No torch here: reading a study's YAML imports this module and nothing heavier."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headsearch.heads import HeadConfig

if TYPE_CHECKING:
    from headsearch.models.text_classifier import TextClassifier

DIRECTIONS = {
    "accuracy": "maximize",
    "flops": "minimize",
    "latency_ms": "minimize",
    "speedup": "maximize",
    "params": "minimize",
}


@dataclass(frozen=True)
class Candidate:
    """A proposal: the heads to keep and what produced them (shown in reports and MLflow).

    ``model``: the classifier when the strategy changed weights (recovery, gate training), holding
    ``head_config``'s heads or more (a checkpoint that serves several budgets); it is sliced to
    ``head_config``, evaluated and exported. Without it the dense model is pruned to ``head_config``.
    ``info``: JSON-serialisable facts about the proposal (stored with the trial and logged to MLflow).
    ``artifacts``: files for the trial's record (name -> text or bytes), e.g. a strategy's own plots.
    """

    head_config: HeadConfig
    description: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)
    model: TextClassifier | None = field(default=None, compare=False, repr=False)
    artifacts: Mapping[str, str | bytes] = field(default_factory=dict, compare=False, repr=False)

    def check_info(self) -> None:
        """``info`` is stored as JSON by Optuna and MLflow: anything else raises ``TypeError`` naming the key
        (drivers fail the trial with it)."""
        for key, value in self.info.items():
            try:
                json.dumps(value, allow_nan=True)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"Candidate.info[{key!r}] is not JSON ({type(value).__name__}); give plain numbers, "
                                "strings, lists or dicts (e.g. float(x) for a numpy or torch number)") from exc

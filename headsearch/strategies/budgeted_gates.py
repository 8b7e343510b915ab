"""Budget-conditioned gates: one checkpoint whose gates are a monotone function of the requested
budget, sliced at any budget without retraining (ALGORITHMS.md section 5; gates in ``headsearch.models.gates``).

The checkpoint is trained once per study and training setting (cached): model weights and gates
together from the dense checkpoint (``warm_start: false``: from a fresh initialisation), one budget
drawn per batch from ``[budget_min, 0.95]``, soft gates. A trial then picks ``budget``: the first
``max(layers, round(budget * N))`` heads of the checkpoint's single head order (nested across budgets),
structural slicing (the Candidate holds the whole checkpoint, with its head order in ``meta``, so
the run keeps it once and ``headsearch export --all-budgets`` writes one artefact for every budget),
and optionally ``adapt_epochs`` of hard-gate adaptation: the sliced model is
fine-tuned with cross-entropy plus distillation from the soft checkpoint at the same budget. Departure
from the paper: the paper's adaptation keeps straight-through hard gates on the full model; training
the sliced model is the same forward pass (binary gates == slicing), without the zero heads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headsearch.heads import HeadConfig, heads_for_budget
from headsearch.models.gates import BudgetGates
from headsearch.models.training import TrainConfig, accuracy, recover, train, trained_learning_rate
from headsearch.strategies._training import start_model, training_rows
from headsearch.strategies.base import Candidate, Strategy, StudyContext


class BudgetedGatesStrategy(Strategy):
    name = "budgeted_gates"
    search_space = "budgeted_gates.yaml"

    def propose(self, params: Mapping[str, Any], context: StudyContext) -> Candidate:
        params = self.with_defaults(params)
        L, H = context.num_layers, context.num_heads
        budget = float(params["budget"])
        clf, gates, setting = checkpoint(context, params)
        order = [tuple(h) for h in clf.meta["head_order"]]
        config = HeadConfig.first(order, heads_for_budget(budget, L, H), L, H)
        adapt = int(params["adapt_epochs"])
        if adapt:
            soft = gates.gates(budget).detach()
            model = recover(clf, config, training_rows(context, setting["train_rows"]),
                            TrainConfig(epochs=adapt, learning_rate=setting["learning_rate"], seed=context.seed),
                            teacher=lambda ids, mask: clf.model(ids, mask, gates=soft), progress=True,
                            on_epoch=lambda epoch, pruned: context.report_progress(  # after the checkpoint's epochs
                                setting["epochs"] + epoch, lambda: accuracy(pruned, context.search), lambda: config))
            model.meta.pop("head_order", None)  # sliced and retrained: it serves this budget only
        else:
            model = clf  # the checkpoint itself: sliced for this trial, and one export serves every budget
        info = {"budget": budget, "heads_kept": config.total_kept, "soft_gate_mass": gates.gates(budget).mean().item(),
                "adapt_epochs": adapt, "warm_start": setting["warm_start"],
                "head_order": [list(h) for h in order]}
        description = (f"budget-conditioned gates at b={budget:g}: {config.total_kept} heads"
                       f"{f', adapted {adapt} epoch(s) with distillation' if adapt else ''}")
        return Candidate(config, description, info, model=model)


def checkpoint(context: StudyContext, params: Mapping[str, Any]) -> tuple[Any, BudgetGates, dict[str, Any]]:
    """The budget-conditioned checkpoint for the training part of ``params`` (completed by the search space's
    defaults), trained once per study."""
    params = BudgetedGatesStrategy.with_defaults(params)
    setting = {
        "learning_rate": trained_learning_rate(context.dense) * float(params["lr_scale"]),
        "epochs": int(params["epochs"]), "train_rows": int(params["train_rows"]),
        "warm_start": bool(params["warm_start"]), "budget_min": float(params["budget_min"]),
        "mass_weight": float(params["mass_weight"]), "overshoot_weight": float(params["overshoot_weight"]),
        "gate_lr": float(params["gate_lr"]),
    }

    def fit() -> tuple:
        clf = start_model(context, setting["warm_start"])
        gates = BudgetGates(context.num_layers, context.num_heads, budgets=(setting["budget_min"], 0.95),
                            mass_weight=setting["mass_weight"], overshoot_weight=setting["overshoot_weight"],
                            learning_rate=setting["gate_lr"], seed=context.seed)
        # no progress reports: the checkpoint serves every budget, and stopping the trial that trains it
        # would only have the next trial train it again
        train(clf, training_rows(context, setting["train_rows"]),
              TrainConfig(epochs=setting["epochs"], learning_rate=setting["learning_rate"], seed=context.seed),
              gates=gates, progress=True)
        clf.meta["head_order"] = [list(h) for h in gates.order()]  # the keeping order; a multi-budget export records it
        return clf, gates

    clf, gates = context.cached_model("budgeted_gates", tuple(sorted(setting.items())), fit)
    return clf, gates, setting

"""Static gates: hard-concrete head gates learned for one budget, then hardened and sliced
(ALGORITHMS.md section 5, the per-budget "specialist" baseline; gates in ``headsearch.models.gates``).

One trial = one budget and its hyperparameters. The model's weights and the gates are trained together
from the dense checkpoint (``warm_start: false`` starts from a fresh initialisation of the same
architecture instead, to measure what the warm start is worth) on ``train_rows`` seeded training rows
for at least ``epochs`` epochs and then until the expected gate mass meets the budget (``max_epochs``
at most; ``info.mass_met_budget`` says whether it did). The gated
model is hardened to exactly ``max(layers, round(budget * N))`` heads (largest ``log_alpha``, each
layer's best first), structurally sliced and optionally recovered for ``recovery_epochs``.
Trained checkpoints are cached per study and setting: repeated settings cost nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from headsearch.heads import HeadConfig, heads_for_budget
from headsearch.models.gates import StaticGates
from headsearch.models.training import TrainConfig, accuracy, train, trained_learning_rate
from headsearch.strategies._training import start_model, training_rows
from headsearch.strategies.base import Candidate, Strategy, StudyContext

MASS_TOLERANCE = 0.02  # expected gate mass may exceed the budget by this much when training stops


class StaticGatesStrategy(Strategy):
    name = "static_gates"
    search_space = "static_gates.yaml"

    def propose(self, params: Mapping[str, Any], context: StudyContext) -> Candidate:
        params = self.with_defaults(params)
        L, H = context.num_layers, context.num_heads
        budget = float(params["budget"])
        count = heads_for_budget(budget, L, H)
        lr = trained_learning_rate(context.dense) * float(params["lr_scale"])
        epochs, max_epochs = int(params["epochs"]), int(params["max_epochs"])
        rows = int(params["train_rows"])
        warm = bool(params["warm_start"])
        weight, gate_lr = float(params["penalty"]), float(params["gate_lr"])
        def fit() -> tuple:
            clf = start_model(context, warm)
            gates = StaticGates(L, H, budget, weight=weight, learning_rate=gate_lr, seed=context.seed)
            data, ran = training_rows(context, rows), 0
            # at least `epochs`, then on until the expected gate mass meets the budget (or max_epochs)
            while ran < max(epochs, 1) or (gates.expected_mass().item() > budget + MASS_TOLERANCE and ran < max_epochs):
                loss = train(clf, data, TrainConfig(epochs=1, learning_rate=lr, seed=context.seed + ran), gates=gates,
                             progress=True)[-1]
                ran += 1
                standing = functools.cache(lambda: HeadConfig.first(gates.order(), count, L, H))  # the heads kept now
                context.report_progress(ran, lambda s=standing: accuracy(clf.prune(s()), context.search), standing)
            return clf, gates.order(), gates.expected_mass().item(), loss, ran

        clf, order, mass, loss, ran = context.cached_model(
            "static_gates", (budget, lr, epochs, max_epochs, rows, warm, weight, gate_lr), fit)
        config = HeadConfig.first(order, count, L, H)
        model = clf.prune(config)
        recovery = int(params["recovery_epochs"])
        if recovery:  # its epochs are reported after the gate epochs (steps ran + 1, ...)
            train(model, training_rows(context, rows), TrainConfig(epochs=recovery, learning_rate=lr, seed=context.seed),
                  progress=True, on_epoch=lambda epoch: context.report_progress(
                      ran + epoch, lambda: accuracy(model, context.search), lambda: config))
        info = {"budget": budget, "heads_kept": config.total_kept, "expected_gate_mass": mass, "final_train_loss": loss,
                "gate_epochs": ran, "mass_met_budget": mass <= budget + MASS_TOLERANCE,
                "warm_start": warm, "recovery_epochs": recovery}
        description = (f"static gates for budget {budget:g}: {config.total_kept} heads (gate mass {mass:.3f})"
                       f"{'' if warm else ', no warm start'}{f', recovered {recovery} epoch(s)' if recovery else ''}")
        return Candidate(config, description, info, model=model)

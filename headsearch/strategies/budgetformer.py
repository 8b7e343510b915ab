"""BudgetFormer: learned per-input head budgets (Faye, Mbaye, Azzag, Lebbah 2026; ALGORITHMS.md section 4).

A trial trains a router (``headsearch.models.routing``: budget controller(s) ``s`` and relevance scorers, top
``ceil(s * H)`` heads per layer and input) together with the model, with task cross-entropy, a target
mean budget enforced by a Lagrange multiplier, the entropy regulariser on the relevance distribution
and the exploration->exploitation schedule (logit noise and temperature annealed). The Candidate holds
the routed model: the evaluator runs it through the runtime that computes only the chosen heads, and
the export folder holds the model with its router. After every epoch the budgets are checked for a
collapse to ``s_min`` or ``s_max``; the trial's info records it and a warning says so.

Departures from the paper, all because it leaves them open or its setup differs: training starts
from the study's dense checkpoint (the paper trains a small encoder from scratch; ``warm_start: false``
does that); gradients reach ``s`` and the scorers through a straight-through soft rank mask; ``s`` is
bounded to ``[s_min, s_max]`` by construction, so the paper's hinge on those bounds is replaced by the
constraint mean ``s`` = ``target_budget``; the controller sees every token (``signal: tokens``;
``mean`` pools first, as the paper); ``per_layer: false`` routes once per input, from the embeddings.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from scipy.stats import spearmanr

from headsearch.cost.flops import count_flops, mean_flops
from headsearch.data.text import TextDataset
from headsearch.heads import HeadConfig
from headsearch.models.encoded import EncodedSplit
from headsearch.models.routing import HeadRouter, RouterSpec, RouterTraining, router_flops
from headsearch.models.text_classifier import TextClassifier
from headsearch.models.training import TrainConfig, train, trained_learning_rate
from headsearch.strategies._training import start_model, training_rows
from headsearch.strategies.base import Candidate, Strategy, StudyContext


class BudgetFormerStrategy(Strategy):
    name = "budgetformer"
    search_space = "budgetformer.yaml"
    per_input = True

    def propose(self, params: Mapping[str, Any], context: StudyContext) -> Candidate:
        params = self.with_defaults(params)
        setting = _setting(params, context)
        clf = context.cached_model("budgetformer", tuple(sorted(setting.items())), lambda: fit(context, setting))
        routing = route(clf, context.search)
        s = routing.s.mean(1)  # per example, mean over layers
        heads = routing.kept.sum((1, 2)).float()
        trained = clf.meta["budgetformer"]
        info = {
            "s_mean": float(s.mean()), "s_p10": float(s.quantile(0.1)), "s_p50": float(s.median()),
            "s_p90": float(s.quantile(0.9)), "heads_mean": float(heads.mean()),
            "spearman_s_length": _spearman(s, routing.lengths), "final_train_loss": trained["epoch_losses"][-1],
            "budget_epochs": trained["budget_epochs"], "collapse": trained["collapse"],
        }
        description = (f"BudgetFormer ({'per-layer' if clf.router.spec.per_layer else 'once-per-input'} router): "
                       f"mean s {info['s_mean']:.3f}, {info['heads_mean']:.1f} heads per input on average")
        return Candidate(HeadConfig.dense(context.num_layers, context.num_heads), description, info, model=clf,
                         artifacts=routing_plots(routing, context.search.label_names))


def _setting(params: Mapping[str, Any], context: StudyContext) -> dict[str, Any]:
    return {
        "per_layer": bool(params["per_layer"]), "s_min": float(params["s_min"]),
        "s_max": float(params["s_max"]), "rounding": str(params["rounding"]),
        "width": int(params["controller_width"]),
        "signal": str(params["signal"]), "target_budget": float(params["target_budget"]),
        "multiplier_lr": float(params["multiplier_lr"]), "quadratic": float(params["quadratic"]),
        "entropy_weight": float(params["entropy_weight"]),
        "tau_start": float(params["tau_start"]), "tau_end": float(params["tau_end"]),
        "explore_fraction": float(params["explore_fraction"]), "noise": float(params["noise"]),
        "router_lr": float(params["router_lr"]),
        "learning_rate": trained_learning_rate(context.dense) * float(params["lr_scale"]),
        "epochs": int(params["epochs"]), "train_rows": int(params["train_rows"]),
        "warm_start": bool(params["warm_start"]),
    }


def fit(context: StudyContext, setting: Mapping[str, Any]) -> TextClassifier:
    """The model with a trained router, from the dense checkpoint (or a fresh initialisation)."""
    clf = start_model(context, setting["warm_start"])
    torch.manual_seed(context.seed)
    router = HeadRouter(RouterSpec.for_model(clf.model.shape, per_layer=setting["per_layer"], s_min=setting["s_min"],
                                             s_max=setting["s_max"], width=setting["width"], rounding=setting["rounding"],
                                             signal=setting["signal"]), initial_budget=setting["target_budget"])
    schedule = RouterTraining(router, learning_rate=setting["router_lr"], target_budget=setting["target_budget"],
                              multiplier_lr=setting["multiplier_lr"], quadratic=setting["quadratic"],
                              entropy_weight=setting["entropy_weight"], tau_start=setting["tau_start"],
                              tau_end=setting["tau_end"], noise=setting["noise"],
                              explore_fraction=setting["explore_fraction"])

    def end_epoch(epoch: int) -> None:
        stats = schedule.end_epoch()
        if stats.collapse() is not None:
            warnings.warn(f"budgetformer: after epoch {epoch} the budgets {stats.collapse()} ({stats.at_min:.0%} at "
                          f"s_min, {stats.at_max:.0%} at s_max): they no longer follow the input. Try another "
                          f"target_budget or fewer epochs.", stacklevel=2)
        _report(context, epoch, clf, router)

    losses = train(clf, training_rows(context, setting["train_rows"]),
                   TrainConfig(epochs=setting["epochs"], learning_rate=setting["learning_rate"], seed=context.seed),
                   gates=schedule, progress=True, on_epoch=end_epoch)
    router.eval()
    clf.router = router
    clf.meta["budgetformer"] = {"setting": dict(setting), "epoch_losses": losses,
                                "budget_epochs": [asdict(e) for e in schedule.epochs],
                                "collapse": schedule.epochs[-1].collapse()}
    return clf


def _report(context: StudyContext, epoch: int, clf: TextClassifier, router: HeadRouter) -> None:
    """Progress after an epoch: accuracy of ``clf`` routed by ``router`` on the search split and its mean FLOPs
    ratio there, measured in one pass when the driver asks for either (the router's mode is restored)."""
    @functools.cache
    def measured() -> tuple[float, float]:
        training, clf.router = router.training, router
        try:
            with router.tracing() as trace:
                acc = EncodedSplit(clf, context.search).accuracy(clf.runtime)
        finally:
            clf.router = None
            router.train(training)
        shape = clf.model.shape
        dense = count_flops(shape, HeadConfig.dense(shape.num_layers, shape.num_heads), context.seq_len).total
        routed = mean_flops(shape, trace.kept().sum(-1).tolist(), context.seq_len)
        return acc, (routed + router_flops(router.spec, context.seq_len)) / dense

    context.report_progress(epoch, lambda: measured()[0], lambda: measured()[1])


@dataclass(frozen=True)
class Routing:
    """What the router chose on a split, rows in the split's order: ``s [rows, layers]``, ``kept [rows,
    layers, heads]``, and each row's token length and label."""

    s: torch.Tensor
    kept: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor


def route(clf: TextClassifier, data: TextDataset) -> Routing:
    split = EncodedSplit(clf, data)
    runtime = clf.runtime
    runtime.eval()
    with clf.router.tracing() as trace, torch.inference_mode():
        for ids, mask, _ in split.batches:
            runtime(ids, mask)
    rows = torch.argsort(split.order)  # batch order -> data order
    lengths = torch.cat([mask.sum(1) for _, mask, _ in split.batches])
    return Routing(trace.s()[rows], trace.kept()[rows], lengths[rows], torch.tensor(data.labels))


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.unique().numel() < 2 or b.unique().numel() < 2:
        return float("nan")  # undefined for a constant
    return float(spearmanr(a.numpy(), b.numpy()).statistic)


def routing_plots(routing: Routing, label_names: tuple[str, ...]) -> dict[str, bytes]:
    """Per-trial PNGs: distribution of s, s by class, s by input length, how often each head is chosen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = routing.s.mean(1).numpy()
    chosen = routing.kept.float().mean(0).numpy()  # [layers, heads]
    labels, lengths = routing.labels.numpy(), routing.lengths.numpy()
    figures: dict[str, bytes] = {}

    def save(name: str, fig) -> None:
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        figures[name] = buffer.getvalue()

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=110)
    ax.hist(s, bins=30, color="#1f77b4")
    ax.set_xlabel("s (fraction of heads, mean over layers)")
    ax.set_ylabel("inputs")
    save("budget_s_hist.png", fig)

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=110)
    ax.boxplot([s[labels == c] for c in range(len(label_names))], showfliers=False)
    ax.set_xticks(range(1, len(label_names) + 1), label_names, rotation=30)
    ax.set_ylabel("s")
    save("budget_s_by_class.png", fig)

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=110)
    ax.scatter(lengths, s, s=6, alpha=0.4)
    ax.set_xlabel("input length (tokens)")
    ax.set_ylabel("s")
    save("budget_s_by_length.png", fig)

    fig, ax = plt.subplots(figsize=(1 + 0.4 * chosen.shape[1], 1 + 0.4 * chosen.shape[0]), dpi=110)
    image = ax.imshow(chosen, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    fig.colorbar(image, ax=ax, label="fraction of inputs")
    save("heads_chosen.png", fig)
    return figures

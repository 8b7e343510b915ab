"""Gradient head importance, per example on length-sorted batches (now) against the paper code's per-batch absolute
value on batches in data order (before issue 30): time per pass, and whether the rankings prune alike.

    python benchmarks/importance_cost.py studies/sst2_minilm_classifier.yaml

On the study's scoring split (``scoring_rows`` training rows): the median time of one pass each way (interleaved,
``--repeats``), the Spearman correlation of the two score tables, and the search split's accuracy of the heads each
keeps at several budgets, one-shot and along an iterative removal order (10% of heads per round, each way re-scored
with its own estimator).
"""

from __future__ import annotations

import statistics
import time

import torch
from _study import open_study, study_parser
from scipy.stats import spearmanr
from torch.nn import functional as F

from headsearch.analysis.head_scores import gradient_importance, layer_normalized
from headsearch.heads import HeadConfig, heads_for_budget
from headsearch.models import accuracy
from headsearch.strategies import base, importance

ONE_SHOT = ("headsearch", ("importance", "one-shot"))  # the context's cached dense pass (StudyContext.importance)


def per_batch_importance(clf, data, *, mask=None, normalize_layers=True, batch_size=32):
    """The estimator before issue 30: |summed gradient| per batch of rows in data order."""
    model = clf.model
    gates = (torch.ones(model.num_layers, model.num_heads) if mask is None else mask.detach().float().clone())
    gates.requires_grad_(True)
    labels = torch.tensor(data.labels)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    total = torch.zeros_like(gates)
    with torch.enable_grad():
        for start in range(0, len(data), batch_size):
            ids, attn = clf.encode_rows(data, range(start, min(start + batch_size, len(data))))
            loss = F.cross_entropy(model(ids, attn, gates=gates), labels[start:start + batch_size], reduction="sum")
            (grad,) = torch.autograd.grad(loss, gates)
            total += grad.abs()
    scores = (total / len(data)).detach()
    return layer_normalized(scores) if normalize_layers else scores


def order_with(estimator, context, step=0.1):
    """``removal_order`` (layer-normalised) with ``estimator`` for every pass, its first round's included."""
    saved = base.gradient_importance, importance.gradient_importance
    base.gradient_importance = importance.gradient_importance = estimator
    context.cache.pop(ONE_SHOT, None)
    try:
        return importance.removal_order(context, normalize_layers=True, step=step)
    finally:
        base.gradient_importance, importance.gradient_importance = saved
        context.cache.pop(ONE_SHOT, None)


def main() -> int:
    parser = study_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    args = parser.parse_args()
    config, context, _ = open_study(args)
    clf, data, search = context.dense, context.scoring, context.search
    L, H = context.num_layers, context.num_heads
    ways = {"per batch, data order (before)": per_batch_importance, "per example, sorted (now)": gradient_importance}
    times = {name: [] for name in ways}
    scores = {}
    for r in range(args.repeats):
        for name in (list(ways) if r % 2 == 0 else list(ways)[::-1]):
            start = time.perf_counter()
            scores[name] = ways[name](clf, data)
            times[name].append(time.perf_counter() - start)
    print(f"model {config.model.source} {L}x{H}; scoring split {len(data)} rows; search split {len(search)} rows; "
          f"{args.threads} threads")
    for name in ways:
        print(f"  {name}: {statistics.median(times[name]):.2f} s per pass (median of {args.repeats})")
    a, b = (s.flatten().numpy() for s in scores.values())
    print(f"  Spearman correlation of the two score tables: {spearmanr(a, b).statistic:.3f}")
    orders = {name: order_with(fn, context) for name, fn in ways.items()}
    print("\n| budget | way | one-shot: accuracy | iterative: accuracy | heads kept by both (one-shot) |")
    print("|---|---|---|---|---|")
    for budget in args.budgets:
        total = heads_for_budget(budget, L, H)
        kept = {}
        for name in ways:
            kept[name] = HeadConfig.top(scores[name].tolist(), total)
            removed = set(orders[name][: L * H - total])
            iterative = HeadConfig(tuple(tuple(h for h in range(H) if (i, h) not in removed) for i in range(L)), H)
            one_shot_acc = accuracy(clf, search, gates=torch.tensor(kept[name].mask()))
            iterative_acc = accuracy(clf, search, gates=torch.tensor(iterative.mask()))
            common = sum(len(set(x) & set(y)) for x, y in zip(*(k.kept for k in kept.values()), strict=True)) \
                if len(kept) == 2 else "-"
            print(f"| {budget:g} ({total} heads) | {name} | {one_shot_acc:.4f} | {iterative_acc:.4f} | {common} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

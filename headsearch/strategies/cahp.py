"""CAHP: keep one head per cluster of heads with similar class-separability profiles; the number of
clusters is chosen by a knee (Livertovsky, Somin, Singer 2026; ALGORITHMS.md section 3).

Steps, as in the authors' code (``yanivlivert/cahp``), with the pieces in core modules:

1. Per-head signatures and Jeffries-Matusita features (``headsearch.analysis.head_signatures``).
2. A head graph (networkx) and a 2-D embedding: t-SNE (the authors'), PCA or spectral on the graph
   (``headsearch.analysis.head_clusters``).
3. k-medoids (FasterPAM) for k = 2 .. N-1 and the mean simplified silhouette curve MSS(k).
4. The knee of MSS(k) by Kneedle with polynomial smoothing (``headsearch.analysis.knee``), falling back to the
   curve's largest distance above its chord when Kneedle finds none. ``curve: accuracy`` is the
   abstract's variant: for every k, the configuration step 5 gives is scored on ``eval_rows`` rows of
   the search split (gated dense model, no recovery), and the knee of accuracy against heads kept
   chooses k; the rest of the search split is reported as a held-out check, as A* does.
5. One representative per cluster: the most salient head (Michel gradient importance, no layer
   normalisation) or the medoid (GB-AFS); a layer left without a head gets back its most salient head.
6. Structural pruning and an optional recovery fine-tune (``recovery_epochs``).

Departures from the authors' code, all deliberate:

- Signatures and salience are computed on the study's *scoring* split (a train sample), not the
  search split the accuracy objective is measured on, so the selection never sees the objective's data.
  The authors average salience over the first 25% of (unshuffled) training batches.
- FasterPAM starts from BUILD (deterministic) instead of the package's random start.
- Kneedle sees x min-max normalised (well-conditioned polynomial fits for any number of heads).
- Recovery uses ``recovery_rows`` seeded training rows (shuffled), not the whole training set for three
  epochs, so that a trial stays affordable on a CPU; its learning rate is a search-space parameter.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch

from headsearch.analysis.head_clusters import EMBEDDINGS, Clustering, embed, kmedoids_sweep
from headsearch.analysis.head_signatures import DISTANCES, class_stats, separability_features
from headsearch.analysis.knee import Knee, find_knee, knee_png
from headsearch.analysis.mask_eval import MaskEvaluator
from headsearch.errors import HeadsearchError
from headsearch.heads import HeadConfig
from headsearch.models.headed import HeadedModel
from headsearch.models.training import TrainConfig, accuracy, recover
from headsearch.strategies._training import training_rows
from headsearch.strategies.base import Candidate, Strategy, StudyContext


@dataclass(frozen=True, kw_only=True)
class CAHPSettings:
    pool_size: int = 32                  # signatures are pool_size x pool_size resized attention maps
    distance: str = "jm"                 # jm | bhattacharyya | wasserstein
    embedding: str = "tsne"              # tsne | pca | spectral
    perplexity: float = 10.0             # t-SNE only
    tsne_init: Literal["pca", "random"] = "pca"  # scikit-learn's default (deterministic); random: seed moves it
    seed: int = 0                        # t-SNE (random start), spectral and k-medoids seed
    curve: Literal["mss", "accuracy"] = "mss"
    poly_degree: int | None = 6          # Kneedle polynomial smoothing; None = no smoothing (interp1d)
    sensitivity: float = 1.0             # Kneedle S
    online: bool = False                 # Kneedle online mode: the last knee instead of the first
    representative: Literal["salience", "medoid"] = "salience"
    eval_rows: int = 256                 # curve "accuracy": search-split rows the curve is measured on
    recovery_epochs: int = 0
    recovery_rows: int = 2000
    recovery_lr: float = 5e-5

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"The '{name}' parameter of CAHP must be {expected}. Got {getattr(self, name)!r} instead.")

        if not isinstance(self.pool_size, int) or self.pool_size < 1:
            raise bad("pool_size", "an int >= 1")
        if self.distance not in DISTANCES:
            raise bad("distance", f"one of {', '.join(DISTANCES)}")
        if self.embedding not in EMBEDDINGS:
            raise bad("embedding", f"one of {', '.join(EMBEDDINGS)}")
        if not self.perplexity > 0:
            raise bad("perplexity", "> 0")
        if self.tsne_init not in ("pca", "random"):
            raise bad("tsne_init", "one of pca, random")
        if self.curve not in ("mss", "accuracy"):
            raise bad("curve", "one of mss, accuracy")
        if self.poly_degree is not None and not 1 <= self.poly_degree <= 20:
            raise bad("poly_degree", "an int in [1, 20] or None")
        if not self.sensitivity > 0:
            raise bad("sensitivity", "> 0")
        if self.representative not in ("salience", "medoid"):
            raise bad("representative", "one of salience, medoid")
        if self.eval_rows < 1 or self.recovery_rows < 1:
            raise bad("eval_rows" if self.eval_rows < 1 else "recovery_rows", "an int >= 1")
        if self.recovery_epochs < 0:
            raise bad("recovery_epochs", "an int >= 0")
        if not self.recovery_lr > 0:
            raise bad("recovery_lr", "> 0")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> CAHPSettings:
        known = {k: v for k, v in params.items() if k in cls.__dataclass_fields__}
        if "poly_degree" in known and known["poly_degree"] is not None:
            known["poly_degree"] = int(known["poly_degree"])
        return cls(**known)


@dataclass(frozen=True)
class Selection:
    """What CAHP chose before recovery, and the intermediates that justify it."""

    head_config: HeadConfig
    k: int
    knee: Knee
    curve_x: tuple[float, ...]  # k (MSS curve) or heads kept (accuracy curve)
    curve_y: tuple[float, ...]
    clustering: Clustering
    restored: tuple[tuple[int, int], ...]  # heads put back by the one-head-per-layer guardrail


def prepared_points(context: StudyContext, s: CAHPSettings) -> tuple[np.ndarray, np.ndarray, list[Clustering]]:
    """Features, 2-D embedding and the k-medoids sweep for ``s``, each cached per the settings it depends on."""
    stats = context.cached("cahp", ("stats", s.pool_size),
                    lambda: class_stats(context.dense, context.scoring, pool_size=s.pool_size, progress=True))
    feats = context.cached("cahp", ("features", s.pool_size, s.distance),
                    lambda: separability_features(stats, s.distance))
    if len(feats) < 4:
        raise HeadsearchError(f"CAHP needs at least 4 heads to choose a number of clusters; the model has {len(feats)}.")
    tsne = (s.perplexity, s.tsne_init) if s.embedding == "tsne" else None
    key = ("embedding", s.pool_size, s.distance, s.embedding, tsne, s.seed)
    points = context.cached("cahp", key, lambda: embed(feats, s.embedding, perplexity=s.perplexity, tsne_init=s.tsne_init,
                                                 seed=s.seed))
    sweep = context.cached("cahp", (*key, "sweep"), lambda: kmedoids_sweep(points, range(2, len(points)), seed=s.seed))
    return feats, points, sweep


def representatives(clustering: Clustering, salience: np.ndarray, rule: str, num_layers: int,
                    num_heads: int) -> tuple[HeadConfig, tuple[tuple[int, int], ...]]:
    """One head per cluster (most salient, or the medoid), then the most salient head of any empty layer."""
    keep: set[int] = set()
    for c, medoid in enumerate(clustering.medoids):
        members = np.flatnonzero(clustering.labels == c)
        keep.add(int(medoid) if rule == "medoid" else int(members[np.argmax(salience[members])]))
    restored = []
    for layer in range(num_layers):
        heads = range(layer * num_heads, (layer + 1) * num_heads)
        if not keep.intersection(heads):
            best = max(heads, key=lambda i: salience[i])
            keep.add(best)
            restored.append((layer, best - layer * num_heads))
    kept = tuple(tuple(h for h in range(num_heads) if layer * num_heads + h in keep) for layer in range(num_layers))
    return HeadConfig(kept, num_heads), tuple(restored)


def select(context: StudyContext, s: CAHPSettings) -> Selection:
    """Steps 1-5: the configuration CAHP keeps for settings ``s`` (cached per settings)."""
    key = ("selection", s.pool_size, s.distance, s.embedding, s.perplexity, s.tsne_init, s.seed, s.curve, s.poly_degree,
           s.sensitivity, s.online, s.representative, s.eval_rows if s.curve == "accuracy" else None)
    return context.cached("cahp", key, lambda: _select(context, s))


def _select(context: StudyContext, s: CAHPSettings) -> Selection:
    L, H = context.num_layers, context.num_heads
    _, _, sweep = prepared_points(context, s)
    salience = context.importance(normalize_layers=False).flatten().numpy()
    configs = [representatives(c, salience, s.representative, L, H) for c in sweep]
    knee_args = {"degree": s.poly_degree, "sensitivity": s.sensitivity, "online": s.online}
    if s.curve == "mss":
        x = [float(k) for k in range(2, 2 + len(sweep))]
        y = [c.mss for c in sweep]
        knee = find_knee(x, y, curve="concave", direction="increasing", **knee_args)
        chosen = knee.index
    else:
        subset, _ = context.search.split(s.eval_rows, seed=context.seed)
        evaluator = context.cached("cahp", ("mask-evaluator", s.eval_rows), lambda: MaskEvaluator(context.dense, subset))
        scores = evaluator.score([torch.tensor(cfg.mask()) for cfg, _ in configs])
        best: dict[int, int] = {}  # heads kept -> index of the most accurate configuration with that many
        for i, ((cfg, _), score) in enumerate(zip(configs, scores, strict=True)):
            if cfg.total_kept not in best or score.accuracy > scores[best[cfg.total_kept]].accuracy:
                best[cfg.total_kept] = i
        order = [best[n] for n in sorted(best)]
        if len(order) < 3:
            raise HeadsearchError(f"The accuracy curve has {len(order)} distinct head counts; a knee needs 3. "
                                  "Use curve: mss for a model this small.")
        x = [float(configs[i][0].total_kept) for i in order]
        y = [scores[i].accuracy for i in order]
        knee = find_knee(x, y, curve="concave", direction="increasing", **knee_args)
        chosen = order[knee.index]
    config, restored = configs[chosen]
    return Selection(config, sweep[chosen].k, knee, tuple(x), tuple(y), sweep[chosen], restored)


MIN_HEADS = 5  # k-medoids sweeps k = 2 .. N-1, and a knee needs three points


class CAHPStrategy(Strategy):
    name = "cahp"
    search_space = "cahp.yaml"

    @classmethod
    def check_model(cls, model: HeadedModel) -> None:
        if model.num_layers * model.num_heads < MIN_HEADS:
            raise HeadsearchError(f"cahp: clustering needs at least {MIN_HEADS} heads to choose among; this model has "
                                  f"{model.num_layers * model.num_heads} (search by query head, or drop cahp).")

    def propose(self, params: Mapping[str, Any], context: StudyContext) -> Candidate:
        params = self.with_defaults(params)
        s = CAHPSettings.from_params(params)
        sel = select(context, s)
        config = sel.head_config
        heads_per_layer = [len(h) for h in config.kept]
        info: dict[str, Any] = {
            "k": sel.k, "heads_kept": config.total_kept, "restored_heads": len(sel.restored),
            "knee_fallback": sel.knee.fallback or "none", "curve": s.curve, "heads_per_layer": heads_per_layer,
            "mss_at_k": sel.clustering.mss,
        }
        if s.curve == "accuracy":
            _, heldout = context.search.split(s.eval_rows, seed=context.seed)
            info["curve_rows"] = s.eval_rows
            if len(heldout):
                info["heldout_accuracy_before_recovery"] = accuracy(context.dense, heldout, gates=torch.tensor(config.mask()))
        model = None
        if s.recovery_epochs > 0:  # without recovery this is the objective's own accuracy: not measured twice
            info["accuracy_before_recovery"] = accuracy(context.dense, context.search, gates=torch.tensor(config.mask()))
            rows = training_rows(context, s.recovery_rows)
            model = recover(context.dense, config, rows, TrainConfig(epochs=s.recovery_epochs, learning_rate=s.recovery_lr,
                                                                     seed=context.seed), progress=True,
                            on_epoch=lambda epoch, pruned: context.report_progress(
                                epoch, lambda: accuracy(pruned, context.search), lambda: config))
            info["recovery_rows"] = len(rows)
        description = (f"CAHP: {sel.k} clusters ({s.embedding}, knee of {s.curve}"
                       f"{'' if sel.knee.fallback is None else ', fallback ' + sel.knee.fallback}), "
                       f"{config.total_kept} heads kept {heads_per_layer}"
                       f"{f', recovered {s.recovery_epochs} epoch(s)' if model else ''}")
        return Candidate(config, description, info, model=model, artifacts=_artifacts(context, s, sel))


def _artifacts(context: StudyContext, s: CAHPSettings, sel: Selection) -> dict[str, str | bytes]:
    feats, points, sweep = prepared_points(context, s)
    x_label = "clusters k" if s.curve == "mss" else "heads kept"
    y_label = "mean simplified silhouette" if s.curve == "mss" else f"accuracy ({s.eval_rows} search rows, no recovery)"
    degree = "no smoothing" if s.poly_degree is None else f"degree-{s.poly_degree} polynomial"
    png = knee_png(list(sel.curve_x), list(sel.curve_y), list(sel.knee.smoothed), sel.knee.index, xlabel=x_label,
                   ylabel=y_label, title=f"CAHP knee ({s.embedding}, {degree}, S={s.sensitivity:g})",
                   note="" if sel.knee.fallback is None else f" ({sel.knee.fallback} fallback)")
    H = context.num_heads
    record = {
        "settings": asdict(s),
        "heads": [[i // H, i % H] for i in range(len(points))],
        "embedding": np.round(points, 6).tolist(),
        "clusters_at_k": sel.clustering.labels.tolist(),
        "medoids_at_k": sel.clustering.medoids.tolist(),
        "mss_curve": {"k": list(range(2, 2 + len(sweep))), "mss": [c.mss for c in sweep]},
        "knee_curve": {"x": list(sel.curve_x), "y": list(sel.curve_y), "smoothed": list(sel.knee.smoothed)},
        "knee": {"index": sel.knee.index, "x": sel.knee.x, "y": sel.knee.y, "fallback": sel.knee.fallback, "k": sel.k},
        "restored_heads": [list(r) for r in sel.restored],
    }
    buffer = io.BytesIO()
    np.save(buffer, feats.astype(np.float32))  # heads x (class pairs * pool_size^2): the JM matrix
    return {"cahp_knee.png": png, "cahp.json": json.dumps(record),
            f"cahp_{s.distance}_features.npy": buffer.getvalue()}

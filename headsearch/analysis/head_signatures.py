"""Per-head class-separability signatures (CAHP step 1-2; Livertovsky, Somin, Singer 2026).

Each head's attention map on one example is cropped to the real tokens, resized bilinearly to
``pool_size x pool_size`` and flattened (the authors' "padding-aware" signature). Per class, the mean
and variance of every dimension are accumulated batch by batch (Chan's parallel update of Welford's
algorithm, float64), so memory holds ``classes x heads x pool_size^2`` numbers whatever the data size.
A head's feature row is then, for every class pair and dimension, a distance between the two classes'
univariate Gaussians: Jeffries-Matusita (the authors' choice), Bhattacharyya, or 2-Wasserstein.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from headsearch.data.text import TextDataset
from headsearch.errors import DataError, ModelError
from headsearch.models.encoded import EncodedSplit
from headsearch.models.text_classifier import TextClassifier

DISTANCES = ("jm", "bhattacharyya", "wasserstein")
MIN_VARIANCE = 1e-6  # the authors' clip: a dimension constant within a class must not divide by zero


@dataclass(frozen=True)
class ClassStats:
    """Per class (axis 0), per head (axis 1, layer-major), per signature dimension: count, mean, variance."""

    counts: np.ndarray  # [classes]
    mean: np.ndarray  # [classes, heads, pool_size**2]
    var: np.ndarray  # same shape, population variance
    heads: tuple[tuple[int, int], ...]  # (layer, head) of each row


def class_stats(clf: TextClassifier, data: TextDataset, *, pool_size: int = 32, batch_size: int = 32,
                progress: bool = False) -> ClassStats:
    """Stream ``data`` through ``clf`` once and accumulate every head's per-class signature statistics."""
    if pool_size < 1:
        raise ValueError(f"The 'pool_size' parameter must be >= 1. Got {pool_size}.")
    present = sorted(set(data.labels))
    if len(present) < 2:
        raise DataError(f"{data.name}: class separability needs at least two classes; found {len(present)} "
                        f"({[data.label_names[c] for c in present]}). Use a split with several classes.")
    model = clf.model
    C = len(data.label_names)
    counts = np.zeros(C)
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None
    heads: tuple[tuple[int, int], ...] = ()
    split = EncodedSplit(clf, data, batch_size=batch_size)
    model.eval()
    with torch.inference_mode():
        for ids, attn, labels in tqdm(split.batches, desc="head signatures", unit="batch", disable=not progress, leave=False):
            with model.record_heads(attention=True) as record:
                model(ids, attn)
            if not record.attention:
                raise ModelError("The model recorded no attention maps; class signatures need them.")
            heads = tuple((layer, h) for layer, kept in enumerate(record.heads) for h in kept)
            maps = torch.cat(record.attention, dim=1)  # [batch, heads, seq, seq], layer-major
            sig = _pooled(maps, attn.sum(1), pool_size).double().numpy()  # [batch, heads, D]
            if mean is None:
                mean = np.zeros((C, *sig.shape[1:]))
                m2 = np.zeros_like(mean)
            labels = labels.numpy()
            for c in np.unique(labels):
                rows = sig[labels == c]
                m, n = len(rows), counts[c]
                batch_mean = rows.mean(0)
                delta = batch_mean - mean[c]
                total = n + m
                mean[c] += delta * (m / total)
                m2[c] += ((rows - batch_mean) ** 2).sum(0) + delta ** 2 * (n * m / total)
                counts[c] = total
    assert mean is not None and m2 is not None
    var = m2 / np.maximum(counts, 1)[:, None, None]
    keep = counts > 0  # classes absent from the data have no statistics
    return ClassStats(counts[keep], mean[keep], var[keep], heads)


def _pooled(maps: torch.Tensor, lengths: torch.Tensor, pool_size: int) -> torch.Tensor:
    """``[batch, heads, pool_size**2]``: each example's maps cropped to its real tokens, then resized."""
    out = torch.empty(maps.shape[0], maps.shape[1], pool_size * pool_size, dtype=maps.dtype)
    for length in lengths.unique().tolist():  # rows of equal length are resized together
        rows = (lengths == length).nonzero().squeeze(1)
        crop = maps[rows, :, :length, :length]
        out[rows] = F.interpolate(crop, size=(pool_size, pool_size), mode="bilinear", align_corners=False).flatten(2)
    return out


def separability_features(stats: ClassStats, distance: str = "jm") -> np.ndarray:
    """``[heads, pairs * D]``: for every class pair and dimension, the distance between the classes."""
    if distance not in DISTANCES:
        raise ValueError(f"The 'distance' parameter must be one of {list(DISTANCES)}. Got {distance!r}.")
    var = np.maximum(stats.var, MIN_VARIANCE)
    rows = []
    for a, b in combinations(range(len(stats.counts)), 2):
        mu1, mu2, v1, v2 = stats.mean[a], stats.mean[b], var[a], var[b]
        if distance == "wasserstein":
            rows.append(np.sqrt((mu1 - mu2) ** 2 + (np.sqrt(v1) - np.sqrt(v2)) ** 2))
            continue
        bhatt = 0.25 * (mu1 - mu2) ** 2 / (v1 + v2) + 0.5 * np.log((v1 + v2) / (2 * np.sqrt(v1 * v2)))
        rows.append(bhatt if distance == "bhattacharyya" else 2 * (1 - np.exp(-bhatt)))
    return np.concatenate(rows, axis=1)

"""Heads as points: a distance graph, a 2-D embedding, k-medoids for every k and the silhouette curve.

CAHP steps 3-5 (ALGORITHMS.md section 3). The graph (networkx) has the heads as nodes and the
Euclidean distance between their feature rows as edge weights; the ``spectral`` embedding reads its
Gaussian affinities. k-medoids is ``kmedoids.fasterpam`` on the embedded points' Euclidean distances,
as in the authors' code. The silhouette is the authors' *mean simplified silhouette* variant:
``b_i`` is the mean distance to the other medoids (not the nearest one), points lying on their medoid
are skipped, and once the curve reaches 1 the rest of it is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

EMBEDDINGS = ("tsne", "pca", "spectral")


def head_graph(features: np.ndarray) -> nx.Graph:
    """Complete graph over the rows of ``features``; edge ``distance`` is the Euclidean distance."""
    diff = features[:, None, :] - features[None, :, :]
    dist = np.sqrt((diff ** 2).sum(-1))
    graph = nx.Graph()
    graph.add_nodes_from(range(len(features)))
    graph.add_weighted_edges_from(((i, j, float(dist[i, j])) for i in range(len(features))
                                   for j in range(i + 1, len(features))), weight="distance")
    return graph


def embed(features: np.ndarray, method: str = "tsne", *, perplexity: float = 10.0, tsne_init: str = "pca",
          seed: int = 0) -> np.ndarray:
    """``[heads, 2]`` coordinates; heads with identical features (copies) get identical coordinates.

    Only distinct rows are embedded: t-SNE started at random would otherwise place copies apart, and its
    perplexity calibration degenerates on zero distances. t-SNE's perplexity is capped below the number
    of distinct rows (scikit-learn's requirement); its ``pca`` start (scikit-learn's default, hence the
    authors') makes it deterministic, ``random`` makes ``seed`` move it. ``spectral`` embeds the head
    graph's Gaussian affinities exp(-d^2 / (2 s^2)), s the median distance."""
    distinct, inverse = np.unique(np.round(features, 9), axis=0, return_inverse=True)
    if len(distinct) < 3:
        raise ValueError(f"Only {len(distinct)} distinct head signatures; an embedding needs at least 3.")
    return _embed(distinct, method, perplexity, tsne_init, seed)[inverse.reshape(-1)]


def _embed(features: np.ndarray, method: str, perplexity: float, tsne_init: str, seed: int) -> np.ndarray:
    n = len(features)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=min(perplexity, n - 1.0), max_iter=1000, init=tsne_init,
                    random_state=seed).fit_transform(features)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(features)
    if method == "spectral":
        from sklearn.manifold import SpectralEmbedding

        dist = nx.to_numpy_array(head_graph(features), nodelist=range(n), weight="distance")
        scale = np.median(dist[np.triu_indices(n, 1)]) or 1.0
        affinity = np.exp(-(dist ** 2) / (2 * scale ** 2))
        return SpectralEmbedding(n_components=2, affinity="precomputed", random_state=seed).fit_transform(affinity)
    raise ValueError(f"The 'embedding' parameter must be one of {list(EMBEDDINGS)}. Got {method!r}.")


@dataclass(frozen=True)
class Clustering:
    k: int
    labels: np.ndarray  # cluster of each point
    medoids: np.ndarray  # point index of each cluster's medoid
    mss: float


def mean_simplified_silhouette(dist: np.ndarray, labels: np.ndarray, medoids: np.ndarray) -> float:
    """The authors' MSS: mean over points off their medoid of (b - a) / max(a, b), a the distance to the
    own medoid, b the mean distance to the other medoids. 1.0 when every point lies on its medoid."""
    to_medoids = dist[:, medoids]  # [points, k]
    a = to_medoids[np.arange(len(labels)), labels]
    others = (to_medoids.sum(1) - a) / max(1, len(medoids) - 1)
    off = a > 0
    if not off.any():
        return 1.0
    a, b = a[off], others[off]
    return float(np.mean((b - a) / np.maximum(a, b)))


def kmedoids_sweep(points: np.ndarray, ks: range, *, seed: int = 0) -> list[Clustering]:
    """FasterPAM (k-medoids, BUILD initialisation) on ``points`` for every k in ``ks``.

    Once MSS reaches 1 every point lies on a medoid: more clusters can only split identical points
    (copies of one head) apart, so every larger k reuses that clustering (its ``k`` says how many
    clusters it really has) and the curve stays at 1, as the authors pad it."""
    import kmedoids

    dist = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    out: list[Clustering] = []
    for k in ks:
        if out and out[-1].mss >= 1.0:
            out.append(out[-1])
            continue
        result = kmedoids.fasterpam(dist, k, init="build", random_state=seed, n_cpu=1)
        labels, medoids = np.asarray(result.labels, dtype=int), np.asarray(result.medoids, dtype=int)
        out.append(Clustering(k, labels, medoids, mean_simplified_silhouette(dist, labels, medoids)))
    return out

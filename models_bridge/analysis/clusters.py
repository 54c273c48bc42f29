"""Interaction clusters (docs/analysis_pid.md): seeded k-means over per-example interaction
vectors f(x) - EMAP f(x), with k chosen by the silhouette score over a range.

Pure: numpy and scikit-learn, no torch, no database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ClusterInputError", "interaction_clusters", "kmeans_codes"]


class ClusterInputError(ValueError):
    code = "clusters_input_invalid"


def kmeans_codes(points: Any, *, k: int, seed: int) -> np.ndarray:
    """Seeded k-means labels of `points` (n, d); k is capped at the number of distinct points
    (a modality a model ignores encodes every example alike: one cluster)."""
    from sklearn.cluster import KMeans

    x = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    if len(x) == 0:
        raise ClusterInputError("no points to cluster")
    if k < 1:
        raise ClusterInputError("k must be at least 1")
    distinct = len(np.unique(x, axis=0))
    k = min(k, distinct)
    if k == 1:
        return np.zeros(len(x), dtype=np.int64)
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return np.asarray(labels, dtype=np.int64)


def interaction_clusters(
    vectors: Any, *, k_range: Sequence[int] | range = range(2, 9), seed: int = 0
) -> dict[str, Any]:
    """Cluster the rows of `vectors` (n, C) for every k in `k_range` (k < n), keep the k with
    the highest silhouette (ties: the smallest k). Returns {"chosen_k", "silhouette": {k:
    score}, "labels": [cluster per row], "sizes": [...], "members": [[row indices], ...]},
    clusters numbered by decreasing size."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ClusterInputError(f"vectors must be a non-empty (n, C) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ClusterInputError("vectors have non-finite entries")
    distinct = len(np.unique(x, axis=0))
    ks = sorted({int(k) for k in k_range if 2 <= int(k) < len(x) and int(k) <= distinct})
    if not ks:
        raise ClusterInputError(
            f"no k in {list(k_range)} fits {len(x)} vectors ({distinct} distinct): "
            "silhouette needs 2 ≤ k < n"
        )
    scores: dict[int, float] = {}
    fits: dict[int, np.ndarray] = {}
    for k in ks:
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
        fits[k] = np.asarray(labels, dtype=np.int64)
        scores[k] = float(silhouette_score(x, labels))
    best = max(ks, key=lambda k: (scores[k], -k))
    raw = fits[best]
    # Renumber by decreasing size (then by first member) so the result reads the same
    # whatever order k-means found the centres in.
    order = sorted(range(best), key=lambda c: (-int((raw == c).sum()), int(np.argmax(raw == c))))
    renumber = {old: new for new, old in enumerate(order)}
    labels = np.array([renumber[int(c)] for c in raw], dtype=np.int64)
    members = [np.flatnonzero(labels == c).tolist() for c in range(best)]
    return {
        "chosen_k": best,
        "silhouette": {str(k): scores[k] for k in ks},
        "labels": labels.tolist(),
        "sizes": [len(m) for m in members],
        "members": members,
        "seed": seed,
    }

"""Clustering metrics: ACC by Hungarian matching, NMI (geometric and arithmetic), ARI.

ACC matches clusters to classes one-to-one on a square contingency matrix, so an empty cluster or
a different number of clusters and classes never crashes and never returns −1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


@dataclass(frozen=True)
class ClusteringScores:
    """Scores of one clustering against ground truth, with the matched cluster→class mapping."""

    acc: float
    nmi: float  # geometric averaging, as in the paper
    nmi_arithmetic: float
    ari: float
    mapping: dict[int, int]  # cluster id -> class id (clusters matched to no class are absent)

    def as_dict(self) -> dict[str, float]:
        """The scalar scores by name."""
        return {"acc": self.acc, "nmi": self.nmi, "nmi_arithmetic": self.nmi_arithmetic, "ari": self.ari}


def contingency_matrix(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Square counts[cluster, class] of size max(#clusters, #classes), with the ids of each axis."""
    clusters, pred_idx = np.unique(pred, return_inverse=True)
    classes, true_idx = np.unique(true, return_inverse=True)
    size = max(len(clusters), len(classes))
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (pred_idx, true_idx), 1)
    return counts, clusters, classes


def hungarian_match(pred: np.ndarray, true: np.ndarray) -> tuple[float, dict[int, int]]:
    """Best one-to-one cluster→class matching: (accuracy, mapping)."""
    counts, clusters, classes = contingency_matrix(pred, true)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    acc = counts[rows, cols].sum() / len(pred)
    mapping = {
        int(clusters[r]): int(classes[c])
        for r, c in zip(rows, cols, strict=True)
        if r < len(clusters) and c < len(classes)
    }
    return float(acc), mapping


def cluster_scores(pred: np.ndarray, true: np.ndarray) -> ClusteringScores:
    """ACC, NMI (geometric and arithmetic), ARI and the mapping for predicted vs true labels."""
    pred, true = np.asarray(pred).ravel(), np.asarray(true).ravel()
    if pred.shape != true.shape or pred.size == 0:
        raise ValueError(f"need equal, non-empty label arrays; got {pred.shape} and {true.shape}")
    acc, mapping = hungarian_match(pred, true)
    return ClusteringScores(
        acc=acc,
        nmi=float(normalized_mutual_info_score(true, pred, average_method="geometric")),
        nmi_arithmetic=float(normalized_mutual_info_score(true, pred, average_method="arithmetic")),
        ari=float(adjusted_rand_score(true, pred)),
        mapping=mapping,
    )

"""Clustering metrics: ACC by Hungarian matching, NMI (geometric and arithmetic), ARI.

ACC matches clusters to classes one-to-one on a square contingency matrix, so an empty cluster or
a different number of clusters and classes never crashes and never returns −1. NMI and ARI are
computed here from the same counts, with scikit-learn's definitions and limit cases (tested against
it): importing sklearn.metrics took 1.3-1.7 s of every train and evaluate stage's start on a 2-core
Xeon, more than these few lines of numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


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
    return matched_accuracy(*contingency_matrix(pred, true))


def matched_accuracy(
    counts: np.ndarray, clusters: np.ndarray, classes: np.ndarray
) -> tuple[float, dict[int, int]]:
    """(accuracy, mapping) of the best one-to-one matching on a square `contingency_matrix`."""
    rows, cols = linear_sum_assignment(counts, maximize=True)
    acc = counts[rows, cols].sum() / counts.sum()
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
    square, clusters, classes = contingency_matrix(pred, true)
    acc, mapping = matched_accuracy(square, clusters, classes)
    # the table scikit-learn's NMI and ARI start from: classes by clusters that occur, no padding,
    # in its orientation so that sums run in its order
    counts = square[: len(clusters), : len(classes)].T.copy()
    return ClusteringScores(
        acc=acc,
        nmi=normalized_mutual_information(counts, "geometric"),
        nmi_arithmetic=normalized_mutual_information(counts, "arithmetic"),
        ari=adjusted_rand_index(counts),
        mapping=mapping,
    )


def entropy(sizes: np.ndarray) -> float:
    """Natural-log entropy of a labelling given the sizes of its groups (all non-zero)."""
    if sizes.size == 1:
        return 0.0
    sizes = sizes.astype(np.float64)
    total = np.sum(sizes)
    return float(-np.sum((sizes / total) * (np.log(sizes) - math.log(total))))


def mutual_information(counts: np.ndarray) -> float:
    """Natural-log mutual information of the labellings of a class-by-cluster table (≥ 0)."""
    rows, cols = np.nonzero(counts)
    joint = counts[rows, cols]
    total = counts.sum()
    row_sizes, col_sizes = counts.sum(axis=1), counts.sum(axis=0)
    if row_sizes.size == 1 or col_sizes.size == 1:  # a single group carries no information
        return 0.0
    share = joint / total
    # log(n_ij n / (a_i b_j)) as sums of logs, term by term as scikit-learn adds them
    log_outer = (
        -np.log(row_sizes[rows] * col_sizes[cols]) + math.log(row_sizes.sum()) + math.log(col_sizes.sum())
    )
    terms = share * (np.log(joint) - math.log(total)) + share * log_outer
    terms = np.where(np.abs(terms) < np.finfo(terms.dtype).eps, 0.0, terms)
    return float(np.clip(terms.sum(), 0.0, None))


def normalized_mutual_information(counts: np.ndarray, average: str) -> float:
    """NMI of a class-by-cluster table, normalised by the "geometric" or "arithmetic" mean entropy.

    As scikit-learn: 1.0 when neither labelling splits the data, 0.0 when the information is 0.
    """
    if counts.shape[0] == counts.shape[1] == 1:
        return 1.0
    information = mutual_information(counts)
    if information == 0.0:
        return 0.0
    h_rows, h_cols = entropy(counts.sum(axis=1)), entropy(counts.sum(axis=0))
    if average == "geometric":
        return float(information / np.sqrt(h_rows * h_cols))
    if average == "arithmetic":
        return float(information / np.mean([h_rows, h_cols]))
    raise ValueError(f"average must be 'geometric' or 'arithmetic', not {average!r}")


def adjusted_rand_index(counts: np.ndarray) -> float:
    """ARI of a class-by-cluster table, from its pair counts in exact Python integers (as
    scikit-learn). Ordered pairs of distinct items: together in both labellings (tp), by class
    only (fn), by cluster only (fp), in neither (tn). Full agreement (one group included) is 1.0.
    """
    counts = counts.astype(np.int64)
    n = int(counts.sum())
    squares = int(np.sum(counts**2))
    tp = squares - n
    fn = int(np.sum(counts.sum(axis=1) ** 2)) - squares
    fp = int(np.sum(counts.sum(axis=0) ** 2)) - squares
    tn = n * n - fn - fp - squares
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))

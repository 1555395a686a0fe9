"""Evaluation of a trained model on its data set: cluster sizes, label metrics, confusion rows.

Transductive, as in the paper: the model is scored on the images it clustered. Without labels,
the label metrics are absent and the report says so instead of failing.
"""

from __future__ import annotations

import numpy as np

from gatcluster.evaluation.metrics import ClusteringScores, cluster_scores

NO_LABELS = "not available: the data set has no labels"


def metrics_report(pred: np.ndarray, labels: np.ndarray | None, num_clusters: int) -> dict:
    """What `reports/metrics.json` holds: counts, the smallest and largest cluster, and ACC/NMI/ARI
    when labels exist. Scalars only: each is one column of `dvc exp show` and one MLflow metric
    (the size of every cluster is in `reports/clusters.json`, `cluster_table`)."""
    sizes = np.bincount(pred, minlength=num_clusters)
    report: dict = {
        "num_images": int(len(pred)),
        "num_clusters": num_clusters,
        "non_empty_clusters": int(np.count_nonzero(sizes)),
        "smallest_cluster": int(sizes.min()),
        "largest_cluster": int(sizes.max()),
    }
    if labels is None:
        report["label_metrics"] = NO_LABELS
        return report
    scores = cluster_scores(pred, labels)
    report.update(scores.as_dict())
    return report


def cluster_names(scores: ClusteringScores, num_clusters: int, classes: list[str]) -> list[str]:
    """A readable name per cluster: its matched class, or `cluster <k>` when it matched none."""
    matched = {k: c for k, c in scores.mapping.items() if 0 <= c < len(classes)}
    return [classes[matched[k]] if k in matched else f"cluster {k}" for k in range(num_clusters)]


def named_clusters(
    pred: np.ndarray, labels: np.ndarray | None, num_clusters: int, classes: list[str]
) -> list[str]:
    """Cluster names of a prediction: matched class names with labels, else `cluster <k>`."""
    if labels is None:
        return [f"cluster {k}" for k in range(num_clusters)]
    return cluster_names(cluster_scores(pred, labels), num_clusters, classes)


def cluster_table(pred: np.ndarray, names: list[str]) -> list[dict]:
    """One record per cluster: id, name and number of images (what `reports/clusters.json` holds)."""
    sizes = np.bincount(pred, minlength=len(names))
    return [{"cluster": k, "name": name, "size": int(sizes[k])} for k, name in enumerate(names)]


def confusion_rows(pred: np.ndarray, labels: np.ndarray, names: list[str], classes: list[str]) -> list[dict]:
    """One row per image, {"actual": class, "predicted": matched cluster name}, for `dvc plots`."""
    return [{"actual": classes[y], "predicted": names[c]} for c, y in zip(pred, labels, strict=True)]


def matched_purity(
    pred: np.ndarray, labels: np.ndarray | None, num_clusters: int, classes: list[str]
) -> tuple[list[str | None], list[float | None]]:
    """Per cluster: the class Hungarian matching gave it and the share of its members in that class
    (None where the data has no labels, the cluster is empty or it matched no class)."""
    if labels is None:
        return [None] * num_clusters, [None] * num_clusters
    mapping = cluster_scores(pred, labels).mapping
    matched: list[str | None] = []
    purity: list[float | None] = []
    for k in range(num_clusters):
        members = labels[pred == k]
        c = mapping.get(k, -1)
        known = 0 <= c < len(classes) and len(members) > 0
        matched.append(classes[c] if known else None)
        purity.append(float(np.mean(members == c)) if known else None)
    return matched, purity

"""Evaluation reports: counts and sizes, label metrics or the reason they are absent, confusion rows."""

from __future__ import annotations

import numpy as np

from gatcluster.evaluation.metrics import cluster_scores
from gatcluster.evaluation.report import (
    NO_LABELS,
    cluster_names,
    cluster_table,
    confusion_rows,
    metrics_report,
    named_clusters,
)

PRED = np.array([2, 2, 0, 0, 0, 2])
TRUE = np.array([0, 0, 1, 1, 1, 1])


def test_report_with_labels_has_sizes_and_scores():
    report = metrics_report(PRED, TRUE, num_clusters=3)
    assert report["non_empty_clusters"] == 2 and report["num_images"] == 6
    assert (report["smallest_cluster"], report["largest_cluster"]) == (0, 3)  # the empty cluster counts
    assert (
        report["acc"] == cluster_scores(PRED, TRUE).acc and "ari" in report and "label_metrics" not in report
    )


def test_report_without_labels_says_why_metrics_are_absent():
    report = metrics_report(PRED, None, num_clusters=3)
    assert report["label_metrics"] == NO_LABELS and "acc" not in report
    assert (report["smallest_cluster"], report["largest_cluster"]) == (0, 3)


def test_the_report_holds_scalars_only():
    # Each key is one `dvc exp show` column and one MLflow metric, whatever the number of clusters.
    for labels in (TRUE, None):
        report = metrics_report(PRED, labels, num_clusters=3)
        assert all(isinstance(v, int | float | str) for v in report.values())


def test_clusters_are_named_by_their_matched_class():
    names = cluster_names(cluster_scores(PRED, TRUE), 3, ["cat", "dog"])
    assert names == ["dog", "cluster 1", "cat"]
    rows = confusion_rows(PRED, TRUE, names, ["cat", "dog"])
    assert rows[0] == {"actual": "cat", "predicted": "cat"} and rows[-1] == {
        "actual": "dog",
        "predicted": "cat",
    }


def test_cluster_table_names_and_counts_every_cluster():
    names = named_clusters(PRED, TRUE, 3, ["cat", "dog"])
    assert cluster_table(PRED, names) == [
        {"cluster": 0, "name": "dog", "size": 3},
        {"cluster": 1, "name": "cluster 1", "size": 0},
        {"cluster": 2, "name": "cat", "size": 3},
    ]


def test_unlabelled_clusters_are_named_by_their_id():
    assert named_clusters(PRED, None, 3, []) == ["cluster 0", "cluster 1", "cluster 2"]

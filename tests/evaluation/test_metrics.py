"""ACC by Hungarian matching, NMI and ARI: invariances and the empty-cluster cases."""

from __future__ import annotations

import numpy as np
import pytest

from gatcluster.evaluation.metrics import cluster_scores, contingency_matrix, hungarian_match

TRUE = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])


def test_perfect_clustering_under_any_label_permutation():
    pred = np.array([2, 0, 1])[TRUE]
    scores = cluster_scores(pred, TRUE)
    assert scores.acc == 1.0 and scores.nmi == pytest.approx(1.0) and scores.ari == pytest.approx(1.0)
    assert scores.mapping == {2: 0, 0: 1, 1: 2}


def test_scores_are_invariant_to_relabelling_the_clusters():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, 300)
    pred = np.where(rng.random(300) < 0.7, true, rng.integers(0, 5, 300))
    base = cluster_scores(pred, true)
    relabelled = cluster_scores(rng.permutation(5)[pred], true)
    assert base.as_dict() == pytest.approx(relabelled.as_dict())


def test_known_accuracy_by_hand():
    pred = np.array([1, 1, 0, 0, 0, 0, 2, 2, 2, 1])  # best: 1->0 (2), 0->1 (3), 2->2 (3) = 8/10
    acc, mapping = hungarian_match(pred, TRUE)
    assert acc == pytest.approx(0.8) and mapping == {1: 0, 0: 1, 2: 2}


def test_an_empty_cluster_neither_crashes_nor_goes_negative():
    pred = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])  # K_pred = 2 < K_true = 3
    scores = cluster_scores(pred, TRUE)
    assert scores.acc == pytest.approx(0.7)
    assert set(scores.mapping) == {0, 1}


def test_more_clusters_than_classes():
    pred = np.arange(10)  # every image its own cluster
    scores = cluster_scores(pred, TRUE)
    assert scores.acc == pytest.approx(0.3)
    assert len(scores.mapping) == 3 and sorted(scores.mapping.values()) == [0, 1, 2]


def test_contingency_matrix_is_square():
    counts, clusters, classes = contingency_matrix(np.array([5, 5, 9]), np.array([0, 1, 2]))
    assert counts.shape == (3, 3) and counts.sum() == 3
    assert list(clusters) == [5, 9] and list(classes) == [0, 1, 2]


def test_nmi_variants_and_ari_of_a_random_clustering():
    rng = np.random.default_rng(1)
    scores = cluster_scores(rng.integers(0, 10, 2000), rng.integers(0, 10, 2000))
    assert 0 <= scores.nmi < 0.05 and 0 <= scores.nmi_arithmetic < 0.05
    assert abs(scores.ari) < 0.02


def test_mismatched_or_empty_inputs_are_rejected():
    with pytest.raises(ValueError, match="equal"):
        cluster_scores(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="non-empty"):
        cluster_scores(np.array([]), np.array([]))


@pytest.mark.parametrize("seed", range(6))
def test_nmi_and_ari_equal_scikit_learns(seed):
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    rng = np.random.default_rng(seed)
    n, k_true, k_pred = [(2000, 10, 10), (50, 3, 7), (7, 2, 1), (300, 1, 4), (1, 1, 1), (900, 10, 3)][seed]
    true = rng.integers(0, k_true, n) * 3 + 5  # ids need not start at 0 nor be dense
    pred = np.where(rng.random(n) < 0.6, true % k_pred, rng.integers(0, k_pred, n))
    scores = cluster_scores(pred, true)
    geometric = normalized_mutual_info_score(true, pred, average_method="geometric")
    arithmetic = normalized_mutual_info_score(true, pred, average_method="arithmetic")
    # the same sums in the same order: equal to the last bit, so reports do not move
    assert (scores.nmi, scores.nmi_arithmetic) == (geometric, arithmetic)
    assert scores.ari == adjusted_rand_score(true, pred)


def test_nmi_and_ari_limit_cases():
    one = np.zeros(8, dtype=int)
    assert cluster_scores(one, one).as_dict() == pytest.approx(
        {"acc": 1.0, "nmi": 1.0, "nmi_arithmetic": 1.0, "ari": 1.0}
    )
    scores = cluster_scores(one, np.arange(8) % 2)  # one cluster against two classes: no information
    assert scores.nmi == scores.nmi_arithmetic == 0.0 and scores.ari == 0.0
    big = np.repeat(np.arange(4), 250_000)  # a million items: products of pair counts beyond int64 stay exact
    assert cluster_scores(big, big).ari == 1.0 and cluster_scores(big[::-1], big).nmi == pytest.approx(1.0)

"""The four losses and their targets on hand-computed inputs (docs/method.md §3)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from gatcluster.training.losses import (
    LOG_KNEE,
    GATClusterLoss,
    attention_loss,
    balanced_target,
    compute_targets,
    entropy_loss,
    invariance_loss,
    kmeans_points,
    knee_log,
    nearest_neighbours,
    neighbour_mean,
    neighbour_ranking,
    normalised_adjacency,
    relation_labels,
    relation_points,
    separability_loss,
    sharpened_target,
    spectral_points,
    uses_feature_points,
)

K = 10


def one_hots(labels: list[int], k: int = K) -> torch.Tensor:
    return F.one_hot(torch.tensor(labels), k).float()


def separated_probs(n_per_cluster: int, k: int = K, seed: int = 0) -> torch.Tensor:
    """Confident probabilities, n_per_cluster images per cluster."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n_per_cluster * k, k, generator=gen)
    logits[torch.arange(n_per_cluster * k), torch.arange(k).repeat(n_per_cluster)] += 8.0
    return logits.softmax(dim=1)


def test_invariance_is_minus_one_at_identical_one_hots():
    p = one_hots([0, 3, 7, 7])
    assert invariance_loss(p, p).item() == pytest.approx(-1.0)
    assert invariance_loss(p, one_hots([1, 2, 3, 4])).item() == pytest.approx(0.0)


def test_entropy_is_minus_log_k_at_a_uniform_mean():
    uniform_mean = one_hots(list(range(K)))
    assert entropy_loss(uniform_mean).item() == pytest.approx(-math.log(K), abs=1e-6)
    collapsed = one_hots([4] * K)  # all in one cluster: the clamped entropy is ~0
    assert entropy_loss(collapsed).item() == pytest.approx(9 * 1e-5 * math.log(1e-5), rel=1e-3)


def floored_log(x: float) -> float:
    """log of a probability as both BCE terms take it: its tangent at LOG_KNEE below the knee."""
    return math.log(x) if x >= LOG_KNEE else math.log(LOG_KNEE) + (x - LOG_KNEE) / LOG_KNEE


def test_knee_log_is_the_log_above_the_knee_and_its_tangent_below():
    x = torch.tensor([0.0, 1e-30, 1e-8, LOG_KNEE, 1e-3, 0.5, 1.0], dtype=torch.float64, requires_grad=True)
    y = knee_log(x)
    y.sum().backward()
    expected = [floored_log(v) for v in x.tolist()]
    assert y.tolist() == pytest.approx(expected, rel=1e-12)
    # The slope never exceeds 1 / knee: a confident pair pushes at most that hard, on any device.
    assert x.grad.max().item() == pytest.approx(1 / LOG_KNEE)
    assert x.grad[:4].tolist() == pytest.approx([1 / LOG_KNEE] * 4)
    assert x.grad[4:].tolist() == pytest.approx([1e3, 2.0, 1.0])


def test_separability_averages_over_the_lower_triangle_with_the_diagonal():
    # All 32 images identical: every cosine is 1. With distinct relation labels, the 32 diagonal
    # pairs cost 0 and the 496 strictly-lower pairs 1 − log(LOG_KNEE) each (the tangent at 0).
    probs = one_hots([2] * 32)
    loss = separability_loss(probs, torch.arange(32))
    expected = -(32 * floored_log(1.0) + 496 * floored_log(0.0)) / 528
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    same = separability_loss(probs, torch.zeros(32, dtype=torch.long)).item()
    assert same == pytest.approx(-floored_log(1.0), abs=1e-6)


def test_separability_matches_a_pairwise_reference():
    probs = separated_probs(3, k=4, seed=1).double()
    labels = torch.tensor([0, 1, 2, 3] * 3)
    pairs = []
    for i in range(len(probs)):
        for j in range(i + 1):
            sim = float(F.cosine_similarity(probs[i], probs[j], dim=0))
            r = float(labels[i] == labels[j])
            pairs.append(-(r * floored_log(sim) + (1 - r) * floored_log(1 - sim)))
    assert separability_loss(probs, labels).item() == pytest.approx(sum(pairs) / len(pairs), rel=1e-9)


def confident_logits(n: int, gap: float, seed: int = 0) -> torch.Tensor:
    """Logits of n images that all go to cluster 0 with a margin of about `gap` over the rest."""
    logits = torch.randn(n, K, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    logits[:, 0] += gap
    return logits


@pytest.mark.parametrize("gap", [8.0, 16.0, 30.0])
def test_separability_gradient_does_not_depend_on_rounding(gap):
    # Confident predictions of one cluster that k-means relations call different: the case where
    # 1 − u·v rounds to 0 or to noise, and plain BCE's gradient to 0, 10⁷ or 10¹².
    logits, labels = confident_logits(32, gap), torch.arange(32)
    grads = []
    for dtype in (torch.float64, torch.float32):
        z = logits.to(dtype).detach().clone().requires_grad_(True)
        separability_loss(z.softmax(dim=1), labels).backward()
        grads.append(z.grad.double())
    reference, single = grads
    assert torch.isfinite(single).all()
    assert (single - reference).norm() <= 1e-3 * reference.norm() + 1e-9


@pytest.mark.parametrize("gap", [8.0, 12.0])
def test_attention_gradient_does_not_depend_on_rounding(gap):
    logits = confident_logits(16, gap, seed=1)
    targets = sharpened_target(confident_logits(16, 2.0, seed=2).softmax(dim=1))
    grads = []
    for dtype in (torch.float64, torch.float32):
        z = logits.to(dtype).detach().clone().requires_grad_(True)
        attention_loss(z.softmax(dim=1), targets.to(dtype)).backward()
        grads.append(z.grad.double())
    reference, single = grads
    assert (single - reference).norm() <= 1e-3 * reference.norm()


def test_attention_loss_is_elementwise_bce():
    q = torch.tensor([[0.8, 0.2], [0.4, 0.6]])
    t = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    half = 0.5 * (floored_log(0.4) + floored_log(0.6))
    expected = -(floored_log(0.8) + floored_log(0.8) + 2 * half) / 4
    assert attention_loss(q, t).item() == pytest.approx(expected, rel=1e-5)


def test_target_rows_sum_to_one():
    probs = torch.rand(50, K, generator=torch.Generator().manual_seed(0)).softmax(dim=1)
    # ε sits in the row sums too (as in the authors' code), so rows fall short of 1 by ~ε / row sum.
    for target in (balanced_target(probs), sharpened_target(probs)):
        assert torch.allclose(target.sum(dim=1), torch.ones(50), atol=1e-3)
    assert torch.allclose(balanced_target(probs, eps=0.0).sum(dim=1), torch.ones(50), atol=1e-6)


def test_balanced_target_favours_small_clusters_and_sharpening_sharpens():
    probs = torch.tensor([[0.6, 0.4]] * 3 + [[0.4, 0.6]])  # cluster 0 carries more mass
    b = balanced_target(probs)
    assert b[0, 0] < probs[0, 0]  # mass moves away from the big cluster
    t = sharpened_target(torch.tensor([[0.7, 0.3], [0.3, 0.7]]))
    assert t[0, 0] > 0.7 and t[1, 1] > 0.7


def test_relation_labels_recover_separated_clusters():
    probs = separated_probs(20)
    labels = relation_labels(sharpened_target(probs), K, n_init=5, seed=0, min_ratio=0.1)
    truth = torch.arange(K).repeat(20)
    same = labels[:, None] == labels[None, :]
    assert torch.equal(same, truth[:, None] == truth[None, :])


def test_guard_fires_on_a_degenerate_batch():
    # Every image in one cluster: k-means cannot find K balanced clusters -> identity relations.
    collapsed = one_hots([3] * 90 + [5] * 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 2 distinct points for K = 10: no ConvergenceWarning noise
        labels = relation_labels(sharpened_target(collapsed), K, n_init=3, seed=0, min_ratio=0.1)
    assert torch.equal(labels, torch.arange(100))


def test_relation_labels_are_seeded():
    t = sharpened_target(separated_probs(10, seed=3) * 0.5 + 0.05)
    a = relation_labels(t, K, n_init=1, seed=7, min_ratio=0.0)
    assert torch.equal(a, relation_labels(t, K, n_init=1, seed=7, min_ratio=0.0))


def test_compute_targets_bundles_all_three():
    probs = separated_probs(10)
    targets = compute_targets(probs, K, n_init=3, seed=0, min_ratio=0.1)
    assert targets.balanced.shape == targets.sharpened.shape == (100, K)
    assert targets.relation_labels.shape == (100,)
    assert targets.relation_labels.max() < K  # not the guard's identity


def clustered_features(n_per_cluster: int, dim: int = 200, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Features of K well-separated groups (random directions plus noise), and each row's group."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(K, dim, generator=gen) * 3
    truth = torch.arange(K).repeat(n_per_cluster)
    return centres[truth] + torch.randn(len(truth), dim, generator=gen), truth


def test_relation_points_are_seeded_principal_components_of_unit_features():
    features, _ = clustered_features(10)
    points = relation_points(features, seed=3, dims=8)
    assert points.shape == (100, 8)
    assert torch.equal(points, relation_points(features, seed=3, dims=8))
    # Only directions count: scaling an image's features leaves its point where it was.
    scaled = features * torch.linspace(0.5, 4.0, len(features))[:, None]
    assert torch.allclose(relation_points(scaled, seed=3, dims=8), points, atol=1e-4)
    # The K groups span K - 1 strong directions: those scores match an exact PCA (up to a rotation
    # within them, so compare distances).
    unit = F.normalize(features, dim=1)
    unit = unit - unit.mean(dim=0)
    u, s, _ = torch.linalg.svd(unit, full_matrices=False)
    exact = u[:, : K - 1] * s[: K - 1]
    ours = relation_points(features, seed=3, dims=K - 1)
    assert torch.allclose(torch.cdist(ours, ours), torch.cdist(exact, exact), atol=1e-3)
    # Fewer images than components: as many components as images.
    assert relation_points(features[:5], seed=3, dims=8).shape == (5, 5)


def test_feature_relations_follow_the_features_not_the_targets():
    features, truth = clustered_features(20)
    probs = separated_probs(20, seed=1)[torch.randperm(200, generator=torch.Generator().manual_seed(2))]
    by_targets = compute_targets(probs, K, n_init=3, seed=0, min_ratio=0.1)
    by_features = compute_targets(probs, K, 3, 0, 0.1, points=relation_points(features, seed=0))
    same = by_features.relation_labels[:, None] == by_features.relation_labels[None, :]
    assert torch.equal(same, truth[:, None] == truth[None, :])
    assert not torch.equal(by_features.relation_labels, by_targets.relation_labels)
    # Balanced and sharpened targets still come from the probabilities.
    assert torch.equal(by_features.balanced, by_targets.balanced)
    assert torch.equal(by_features.sharpened, by_targets.sharpened)


def test_total_is_the_weighted_sum_of_the_terms():
    weights = {"invariance": 5, "entropy": 3, "entropy_att": 3, "separability": 1, "attention": 5}
    probs = separated_probs(4)
    att = separated_probs(4, seed=1)
    targets = compute_targets(probs, K, 2, 0, 0.0)
    total, terms = GATClusterLoss(weights)(
        probs, att, targets.balanced, targets.sharpened, targets.relation_labels
    )
    assert set(terms) == set(weights)
    assert total.item() == pytest.approx(sum(weights[k] * terms[k].item() for k in weights), rel=1e-6)


def test_missing_loss_weights_are_rejected():
    with pytest.raises(ValueError, match="attention"):
        GATClusterLoss({"invariance": 1, "entropy": 1, "entropy_att": 1, "separability": 1})


def test_one_sinkhorn_sweep_is_the_papers_balanced_target():
    probs = separated_probs(5)
    b = probs / (probs.sum(dim=0, keepdim=True) + 1e-5)
    assert torch.equal(balanced_target(probs), b / (b.sum(dim=1, keepdim=True) + 1e-5))


def test_separability_gradient_repeats_exactly():
    # Pairs read from (B, B) matrices: gathering rows by repeated indices summed their gradients
    # in a thread-dependent order, so seeded float32 runs did not repeat.
    logits = torch.randn(128, K, generator=torch.Generator().manual_seed(4)).requires_grad_(True)
    labels = torch.arange(128) % K
    grads = []
    for _ in range(4):
        logits.grad = None
        separability_loss(logits.softmax(dim=1), labels).backward()
        grads.append(logits.grad.clone())
    assert all(torch.equal(g, grads[0]) for g in grads)


def test_neighbour_mean_averages_each_image_with_its_nearest_in_feature_space():
    points = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.2, 0.0]])
    probs = one_hots([0, 1, 2, 3], k=4)
    smoothed = neighbour_mean(probs, nearest_neighbours(points, 1))
    expected = torch.tensor([[0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]])
    assert torch.allclose(smoothed, expected)
    assert torch.allclose(smoothed.sum(dim=1), torch.ones(4))  # still probabilities
    everyone = nearest_neighbours(points, 10)  # at most L - 1
    assert torch.allclose(neighbour_mean(probs, everyone), torch.full((4, 4), 0.25))


def test_neighbour_mean_follows_the_features_groups():
    features, truth = clustered_features(20)
    probs = separated_probs(20, seed=1)  # confident, but unrelated to the feature groups
    smoothed = neighbour_mean(probs, nearest_neighbours(relation_points(features, seed=0), 5))
    # Each image's five nearest neighbours lie in its own feature group.
    same_group = truth[:, None] == truth[None, :]
    manual = torch.stack([probs[same_group[i]].mean(dim=0) for i in range(len(probs))])
    assert not torch.allclose(smoothed, probs)
    assert (smoothed - manual).abs().max() < (probs - manual).abs().max()


def test_feature_points_are_needed_unless_relations_and_targets_come_from_the_targets_alone():
    assert uses_feature_points("spectral", 0) and uses_feature_points("features", 0)
    assert uses_feature_points("targets", 5)
    assert not uses_feature_points("targets", 0)


def test_neighbour_ranking_is_deep_enough_for_every_use_and_its_prefix_is_each_ranking():
    features, _ = clustered_features(20)
    points = relation_points(features, seed=0)
    deepest = neighbour_ranking(points, "spectral", neighbours=5)
    assert deepest.shape == (200, 10)  # the spectral graph's 10 neighbours
    assert neighbour_ranking(points, "features", neighbours=5).shape == (200, 5)
    assert neighbour_ranking(points, "spectral", neighbours=12).shape == (200, 12)
    assert neighbour_ranking(points, "features", neighbours=0) is None
    assert neighbour_ranking(None, "targets", neighbours=0) is None
    # The trainer slices one ranking for both uses: its first k columns are the k-nearest ranking.
    tied = torch.tensor([[0.0], [1.0], [-1.0], [2.0], [-2.0], [1.0]])  # equal distances keep index order
    for pts in (points, tied):
        full = nearest_neighbours(pts, 10)
        for k in (1, 3, 5):
            assert torch.equal(full[:, :k], nearest_neighbours(pts, k))


def rings(n_per_ring: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two concentric circles (radii 1 and 4) with a little noise, and each point's ring."""
    gen = torch.Generator().manual_seed(0)
    angle = torch.rand(2 * n_per_ring, generator=gen) * 2 * math.pi
    truth = torch.arange(2).repeat_interleave(n_per_ring)
    radius = 1.0 + 3.0 * truth + 0.05 * torch.randn(2 * n_per_ring, generator=gen)
    return torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1), truth


def test_spectral_points_separate_groups_that_k_means_cannot():
    points, truth = rings(150)
    same_truth = truth[:, None] == truth[None, :]
    by_kmeans = relation_labels(points, 2, n_init=5, seed=0, min_ratio=0.0)
    assert not torch.equal(by_kmeans[:, None] == by_kmeans[None, :], same_truth)  # convex halves
    embedded = spectral_points(nearest_neighbours(points, 10), dims=2)
    assert embedded.shape == (300, 2) and embedded.dtype == torch.float64
    assert torch.allclose(embedded.norm(dim=1), torch.ones(300, dtype=torch.float64))
    labels = relation_labels(embedded, 2, n_init=5, seed=0, min_ratio=0.0)
    assert torch.equal(labels[:, None] == labels[None, :], same_truth)
    assert torch.equal(embedded, spectral_points(nearest_neighbours(points, 10), dims=2))  # no random draws


def full_eigh_embedding(nearest: torch.Tensor, dims: int) -> torch.Tensor:
    """The embedding by torch's full eigh of the same normalised adjacency: the reference."""
    return torch.linalg.eigh(normalised_adjacency(nearest)).eigenvectors[:, -dims:]


def test_spectral_points_span_the_leading_eigenvectors_of_a_full_eigh():
    features, _ = clustered_features(30)
    nearest = nearest_neighbours(relation_points(features, seed=0), 10)
    embedded = spectral_points(nearest, K)
    reference = torch.nn.functional.normalize(full_eigh_embedding(nearest, K), dim=1)
    # Rows are defined up to one orthogonal map of the subspace: their inner products are not.
    assert torch.allclose(embedded @ embedded.T, reference @ reference.T, atol=1e-9)


def test_spectral_points_of_a_graph_of_k_components_put_each_on_its_own_axis():
    # Ten far-apart groups: eigenvalue 1 ten times over, where a Lanczos solver misses copies.
    gen = torch.Generator().manual_seed(0)
    truth = torch.arange(K).repeat_interleave(30)
    points = 100 * torch.randn(K, 8, generator=gen)[truth] + torch.randn(len(truth), 8, generator=gen)
    embedded = spectral_points(nearest_neighbours(points, 10), K)
    same = (truth[:, None] == truth[None, :]).double()
    assert torch.allclose(embedded @ embedded.T, same, atol=1e-9)  # one unit vector per group, orthogonal


def test_kmeans_points_follow_the_relations_setting():
    features, truth = clustered_features(20)
    points = relation_points(features, seed=0)
    nearest = neighbour_ranking(points, "spectral", neighbours=5)
    assert kmeans_points("targets", points, nearest, K) is None  # k-means then runs on the sharpened targets
    assert kmeans_points("features", points, nearest, K) is points
    embedded = kmeans_points("spectral", points, nearest, K)
    assert embedded.shape == (200, K)
    probs = separated_probs(20, seed=1)  # unrelated to the feature groups
    labels = compute_targets(probs, K, 3, 0, 0.1, points=embedded).relation_labels
    assert torch.equal(labels[:, None] == labels[None, :], truth[:, None] == truth[None, :])

"""The torch k-means: it finds separated clusters, is seeded, keeps the best restart, and is as good
as scikit-learn's on the points the trainer gives it."""

from __future__ import annotations

import torch
from sklearn.cluster import KMeans

from gatcluster.training.kmeans import centre_means, kmeans, lloyd, plus_plus_seeds
from gatcluster.training.losses import relation_points

K = 10


def blobs(per_cluster: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """K tight, far-apart Gaussian blobs in 16 dimensions, and each point's blob."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(K, 16, generator=gen, dtype=torch.float64) * 10
    truth = torch.arange(K).repeat_interleave(per_cluster)
    return centres[truth] + 0.1 * torch.randn(len(truth), 16, generator=gen, dtype=torch.float64), truth


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a[:, None] == a[None, :], b[:, None] == b[None, :])


def test_separated_blobs_are_found_exactly():
    points, truth = blobs(30)
    assert same_partition(kmeans(points, K, 10, seed=0), truth)


def test_the_seed_fixes_the_result_and_the_dtype_does_not_matter():
    points, _ = blobs(20, seed=1)
    noisy = points + 3 * torch.randn(
        points.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    first = kmeans(noisy, K, 5, seed=7)
    assert torch.equal(first, kmeans(noisy, K, 5, seed=7))
    assert torch.equal(first, kmeans(noisy.float().double(), K, 5, seed=7))


def test_the_restart_with_the_lowest_inertia_is_kept():
    points = torch.randn(300, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    seeds = plus_plus_seeds(points, K, 8, torch.Generator().manual_seed(5))
    labels, inertia = lloyd(points, seeds)
    assert torch.equal(kmeans(points, K, 8, seed=5), labels[inertia.argmin()])
    assert len(set(inertia.tolist())) > 1  # the restarts really differ


def test_a_cluster_without_points_keeps_its_centre():
    points = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    centres = torch.tensor([[[0.0, 1.0], [5.0, 5.0]]], dtype=torch.float64)  # (R=1, K=2, D)
    means = centre_means(points, torch.tensor([[0, 0]]), centres)
    assert torch.equal(means[0, 0], torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert torch.equal(means[0, 1], centres[0, 1])


def test_as_good_as_scikit_learn_on_relation_points_of_real_digits(mnist5k_dataset):
    pixels = torch.tensor(mnist5k_dataset.images.reshape(5000, -1) / 255.0, dtype=torch.float32)
    for seed in (0, 1):
        idx = torch.randperm(5000, generator=torch.Generator().manual_seed(seed))[:1000]
        points = relation_points(pixels[idx], seed=seed).double()
        ours = kmeans(points, K, 20, seed)
        inertia = sum(((points[ours == c] - points[ours == c].mean(0)) ** 2).sum() for c in range(K))
        theirs = KMeans(K, n_init=20, random_state=seed).fit(points.numpy()).inertia_
        assert inertia <= 1.01 * theirs

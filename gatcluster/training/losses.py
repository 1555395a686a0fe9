"""The four self-learning losses of GATCluster and the targets they learn from (docs/method.md §3).

Targets come from the clean probabilities P (|L| × K) of a large batch, computed without gradients
(with `experimental.neighbours` > 0, the default, each image's P averaged with its nearest
neighbours' in the mid-level features first: `neighbour_mean`): balanced targets for transformation
invariance, sharpened targets for the attention head, and k-means relation labels for separability
(of the sharpened targets as in the paper; with `experimental.relations: features`, of the
network's mid-level features; with `spectral`, the default, of the spectral embedding of those
features' nearest-neighbour graph: `kmeans_points`). Losses see the sub-batch outputs p', q'.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import scipy.linalg
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from torch import nn

from gatcluster.model.head import full_precision
from gatcluster.training.kmeans import kmeans

TARGET_EPS = 1e-5
ENTROPY_CLAMP = 1e-5
# Below this probability the two BCE terms continue their log linearly (slope 1 / LOG_KNEE), so one
# pair or entry pushes with a gradient of at most 10⁴. With the log itself (floored at 1e-30) a
# confident pair whose k-means relation disagrees pushed with up to 10³⁰ / pair: seeds 3 and 4 of
# mnist5k then settled at ACC 0.72 / 0.77 instead of 0.98 (docs/numerics.md §4).
LOG_KNEE = 1e-4
# Principal components of the mid-level features that k-means sees: measured on mnist5k, 16–128
# components give the same k-means ACC as all 2,048 dimensions at a twentieth of the time.
RELATION_FEATURE_DIMS = 32
# Neighbours per image in the graph whose spectral embedding the relations' k-means clusters
# (`experimental.relations: spectral`): the common choice for spectral clustering (scikit-learn's
# SpectralClustering uses 10), not tuned: the measured runs (docs/experiments.md) used 10.
SPECTRAL_GRAPH_K = 10


class Targets(NamedTuple):
    """Dataset-level targets for the images of one large batch."""

    balanced: torch.Tensor  # b: (L, K)
    sharpened: torch.Tensor  # t: (L, K)
    relation_labels: torch.Tensor  # (L,) k-means cluster of each image; r_ij = [label_i == label_j]


def balanced_target(probs: torch.Tensor, eps: float = TARGET_EPS) -> torch.Tensor:
    """b_ik ∝ P_ik / Σ_l P_lk, rows renormalised: pushes towards balanced clusters.

    That is one Sinkhorn-Knopp sweep (columns, then rows), as in the paper; more sweeps were
    screened and lost (docs/experiments.md).
    """
    b = probs / (probs.sum(dim=0, keepdim=True) + eps)
    return b / (b.sum(dim=1, keepdim=True) + eps)


def sharpened_target(probs: torch.Tensor, eps: float = TARGET_EPS) -> torch.Tensor:
    """t_ik ∝ P_ik² / Σ_l P_lk, rows renormalised (DEC's auxiliary distribution)."""
    t = probs**2 / (probs.sum(dim=0, keepdim=True) + eps)
    return t / (t.sum(dim=1, keepdim=True) + eps)


def relation_points(features: torch.Tensor, seed: int, dims: int = RELATION_FEATURE_DIMS) -> torch.Tensor:
    """Mid-level features (L, D) as k-means points: unit length, then their first `dims` principal
    components (scores), by a seeded randomized SVD (Halko et al., 2011; no global random state).

    Randomized, in float32 and with two power iterations: sklearn's PCA on the same features took
    ten times as long, a third of a training iteration on this project's CPU.
    """
    x = F.normalize(features.float(), dim=1)
    x = x - x.mean(dim=0)
    rank = min(dims, *x.shape)
    gen = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(x.shape[1], min(rank + 8, x.shape[1]), generator=gen, dtype=x.dtype)
    sketch = x @ gaussian.to(x.device)  # drawn on the CPU: the same sketch on every device
    for _ in range(2):  # power iterations sharpen the leading subspace
        basis, _ = torch.linalg.qr(sketch)
        sketch = x @ (x.T @ basis)
    basis, _ = torch.linalg.qr(sketch)
    u, s, _ = torch.linalg.svd(basis.T @ x, full_matrices=False)
    return (basis @ u[:, :rank]) * s[:rank]


def nearest_neighbours(points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (L, min(k, L − 1)) of each point's k nearest other points, nearest first.

    Distances in float64 and a stable sort, as k-means works in float64: the points carry the
    device's rounding, but ranking them adds none (float32's |x|² + |y|² − 2xy expansion in cdist
    cancels for close points), and equal distances keep index order on every device.
    """
    x = points.detach().to(torch.float64)
    dist = torch.cdist(x, x)
    dist.fill_diagonal_(float("inf"))
    return dist.sort(dim=1, stable=True).indices[:, : min(k, len(points) - 1)]


def uses_feature_points(relations: str, neighbours: int) -> bool:
    """Whether the targets need the mid-level feature points (`relation_points`): for relations
    other than the sharpened targets' and for the neighbour mean."""
    return relations != "targets" or neighbours > 0


def neighbour_ranking(points: torch.Tensor | None, relations: str, neighbours: int) -> torch.Tensor | None:
    """The nearest-neighbour ranking of the relation points that the targets need, computed once:
    deep enough for the neighbour mean (`neighbours`) and the spectral graph (SPECTRAL_GRAPH_K), or
    None when neither is used. A stable sort makes its first k columns the k-nearest ranking itself.
    """
    depth = max(neighbours, SPECTRAL_GRAPH_K if relations == "spectral" else 0)
    return nearest_neighbours(points, depth) if depth > 0 and points is not None else None


def neighbour_mean(probs: torch.Tensor, nearest: torch.Tensor) -> torch.Tensor:
    """Each row of P averaged with the rows of its nearest neighbours (itself included): `nearest`
    (L, k) holds their indices, as `nearest_neighbours` ranks them.

    The targets then agree along the data's local structure: inside a large batch of Fashion-MNIST,
    5 nearest neighbours in the mid-level features share the class 3 times in 4 where k-means
    clusters of the same points do only half the time (docs/experiments.md).
    """
    probs = probs.float()
    return (probs + probs[nearest].sum(dim=1)) / (nearest.shape[1] + 1)


def normalised_adjacency(nearest: torch.Tensor) -> torch.Tensor:
    """D^-1/2 W D^-1/2 (L, L), float64, on the ranking's device, of the symmetrised graph whose
    indices `nearest` (L, k) holds: i ~ j when either is among the other's nearest."""
    n = len(nearest)
    adjacency = torch.zeros(n, n, dtype=torch.float64, device=nearest.device)
    adjacency.scatter_(1, nearest, 1.0)
    adjacency = torch.maximum(adjacency, adjacency.T)
    inv_sqrt_degree = adjacency.sum(dim=1).rsqrt()  # every degree ≥ 1: each point has neighbours
    return inv_sqrt_degree[:, None] * adjacency * inv_sqrt_degree[None, :]


def spectral_points(nearest: torch.Tensor, dims: int) -> torch.Tensor:
    """The spectral embedding (Ng, Jordan and Weiss, 2001) of the nearest-neighbour graph whose
    indices `nearest` (L, k) holds: the `dims` leading eigenvectors of the symmetric normalised
    adjacency D^-1/2 W D^-1/2 of the symmetrised graph, each row scaled to unit length. (L, dims),
    float64, on the ranking's device.

    k-means on these rows groups images that a chain of near neighbours connects, where k-means on
    the points themselves cuts the data into convex cells; on Fashion-MNIST an image's nearest
    neighbours share its class three times in four and k-means cells half the time
    (docs/experiments.md). No random draws, and float64 like the distances. Eigenvectors are
    defined up to sign (and up to a rotation where an eigenvalue repeats); that leaves the rows'
    distances, and so k-means, unchanged.

    Computed on the host whatever the device, by LAPACK's dsyevr for the leading eigenpairs only:
    on one thread as fast as a full eigh on two (and exact where eigenvalues repeat, as on a graph
    of several components, where a Lanczos solver misses copies), and the same code on every device
    (docs/experiments.md, "The spectral embedding"). On CUDA this reads the ranking back once per
    target pass: 80 KB down, the embedding up.
    """
    normalised = normalised_adjacency(nearest.cpu()).numpy()
    n = len(normalised)
    leading = [n - min(dims, n), n - 1]  # ascending eigenvalues: the leading ones last
    # One LAPACK thread when the CPU trains: OpenBLAS's idle workers spin for a while after a call
    # and took the cores from the k-means right after (28 -> 85-117 ms per target pass at 2
    # threads). On a GPU's host torch's threads idle, so LAPACK may have them.
    threads = 1 if nearest.device.type == "cpu" else torch.get_num_threads()
    with threadpool_limits(limits=threads, user_api="blas"):
        _, vectors = scipy.linalg.eigh(
            normalised, subset_by_index=leading, driver="evr", overwrite_a=True, check_finite=False
        )
    return F.normalize(torch.from_numpy(vectors), dim=1).to(nearest.device)


def kmeans_points(
    relations: str, points: torch.Tensor | None, nearest: torch.Tensor | None, num_clusters: int
) -> torch.Tensor | None:
    """What the relations' k-means clusters for `experimental.relations`: None for "targets" (the
    sharpened targets), the feature `points` for "features", for "spectral" the spectral embedding
    with `num_clusters` dimensions of their SPECTRAL_GRAPH_K-nearest-neighbour graph (the first
    columns of the ranking `nearest`)."""
    if relations == "spectral":
        return spectral_points(nearest[:, :SPECTRAL_GRAPH_K], num_clusters)
    return points if relations == "features" else None


def relation_labels(
    points: torch.Tensor, num_clusters: int, n_init: int, seed: int, min_ratio: float
) -> torch.Tensor:
    """k-means cluster labels of `points` (the sharpened targets, or `relation_points` of the
    features), or one label per image if degenerate.

    The guard: fewer than K non-empty clusters, or one with < min_ratio·|L|/K members, makes
    every pair "different" (the identity relation), as in the authors' code.
    """
    n = points.shape[0]
    identity = torch.arange(n, device=points.device)
    if n < num_clusters:
        return identity
    labels = kmeans(points, num_clusters, n_init, seed)
    # A one-hot sum, not bincount (which reads its range back to the host on CUDA).
    counts = F.one_hot(labels, num_clusters).sum(dim=0)
    degenerate = counts.min() < max(min_ratio * n / num_clusters, 1)
    return torch.where(degenerate, identity, labels)


def compute_targets(
    probs: torch.Tensor,
    num_clusters: int,
    n_init: int,
    seed: int,
    min_ratio: float,
    points: torch.Tensor | None = None,
) -> Targets:
    """All targets for one large batch from its clean probabilities P; the relations from k-means
    on `points` when given (`relation_points` of the features), else on the sharpened targets."""
    probs = probs.float()
    t = sharpened_target(probs)
    labels = relation_labels(t if points is None else points, num_clusters, n_init, seed, min_ratio)
    labels = labels.to(probs.device)
    return Targets(balanced_target(probs), t, labels)


def invariance_loss(probs: torch.Tensor, balanced: torch.Tensor) -> torch.Tensor:
    """−mean_i ⟨p'_i, b_i⟩: −1 only when both are the same one-hot."""
    return -(probs * balanced).sum(dim=1).mean()


def entropy_loss(probs: torch.Tensor) -> torch.Tensor:
    """Σ_k p̄_k log p̄_k of the sub-batch mean; −log K at a uniform mean (balanced clusters)."""
    mean = probs.mean(dim=0).clamp(min=ENTROPY_CLAMP)
    return (mean * mean.log()).sum()


def knee_log(x: torch.Tensor, knee: float = LOG_KNEE) -> torch.Tensor:
    """log x for x ≥ knee, continued below by its tangent at the knee: log knee + (x − knee) / knee.

    Continuous with a continuous first derivative, finite at 0, and its gradient is at most 1/knee.
    """
    above = x >= knee
    # The log of 1 where x is below the knee: that branch is not taken, and its gradient must be finite.
    log = torch.where(above, x, torch.ones_like(x)).log()
    return torch.where(above, log, math.log(knee) + (x - knee) / knee)


def exact_bce(x: torch.Tensor, x_complement: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of probabilities `x` against `target`, with 1 − x given as
    `x_complement`, computed where it does not cancel.

    torch's BCE takes log(1 − x) from x: where x rounds to 1 its gradient (x − y) / x(1 − x) is
    whatever the rounding makes it, 0 (x rounded above 1 and clamped), 10⁷ or 10¹² (x exactly 1).
    From an exact complement both logs and their gradients keep float32's relative precision; each
    log bends into its tangent below LOG_KNEE (`knee_log`), so no pair's gradient exceeds 10⁴.
    """
    inside, outside = knee_log(x), knee_log(x_complement)
    return -(target * inside + (1 - target) * outside).mean()


def separability_loss(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BCE between cosine similarities and same-cluster relations (`exact_bce`).

    Over the lower triangle including the diagonal: n(n+1)/2 pairs (528 for 32 images). 1 − cos
    comes from the distance of the unit vectors, ½‖u_i − u_j‖², not from 1 − u_i·u_j: for two
    confident predictions of one cluster u_i·u_j rounds to 1 and the difference would be rounding
    noise.
    """
    unit = F.normalize(probs, dim=1)
    # Every pair from broadcasting, (B, B, K) -> (B, B), then each pair read once: gathering rows of
    # `unit` by repeated indices would sum their gradients in a thread-dependent order on the CPU.
    cos = (unit[:, None, :] * unit[None, :, :]).sum(dim=2)
    gap = 0.5 * (unit[:, None, :] - unit[None, :, :]).pow(2).sum(dim=2)  # 1 − cos, exactly
    rows, cols = torch.tril_indices(len(probs), len(probs), device=probs.device)
    # Probabilities are non-negative, so the cosine lies in [0, 1].
    pair_cos, pair_gap = cos[rows, cols].clamp(0.0, 1.0), gap[rows, cols].clamp(0.0, 1.0)
    relation = (labels[rows] == labels[cols]).to(pair_cos.dtype)
    return exact_bce(pair_cos, pair_gap, relation)


def rest_of_rows(probs: torch.Tensor) -> torch.Tensor:
    """1 − p_ik as the sum of the row's other entries: exact where p_ik rounds towards 1. (B, K)"""
    others = 1 - torch.eye(probs.shape[1], dtype=probs.dtype, device=probs.device)  # (K, K)
    # Elementwise, not a matrix product: CUDA may run float32 products in TF32 (10 bits).
    return (probs[:, None, :] * others).sum(dim=2)


def attention_loss(att_probs: torch.Tensor, sharpened: torch.Tensor) -> torch.Tensor:
    """Elementwise BCE between attention-head probabilities and sharpened targets; 1 − q as the
    sum of the other entries (`exact_bce`)."""
    return exact_bce(att_probs, rest_of_rows(att_probs), sharpened.to(att_probs.dtype))


class GATClusterLoss(nn.Module):
    """Weighted sum of the losses; returns the total and each term (float32, outside autocast)."""

    TERMS = ("invariance", "entropy", "entropy_att", "separability", "attention")

    def __init__(self, weights: dict[str, float]) -> None:
        super().__init__()
        missing = set(self.TERMS) - set(weights)
        if missing:
            raise ValueError(f"loss weights missing: {sorted(missing)}")
        self.weights = {k: float(weights[k]) for k in self.TERMS}

    def forward(
        self,
        probs: torch.Tensor,
        att_probs: torch.Tensor,
        balanced: torch.Tensor,
        sharpened: torch.Tensor,
        labels: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        probs, att_probs = full_precision(probs), full_precision(att_probs)
        with torch.autocast(device_type=probs.device.type, enabled=False):
            terms = {
                "invariance": invariance_loss(probs, balanced),
                "entropy": entropy_loss(probs),
                "entropy_att": entropy_loss(att_probs),
                "separability": separability_loss(probs, labels),
                "attention": attention_loss(att_probs, sharpened),
            }
        total = sum(self.weights[k] * v for k, v in terms.items())
        return total, terms

"""Seeded k-means in torch, every restart at once: the same code and draws on the CPU and the GPU.

The relation targets need k-means of a large batch once per iteration. scikit-learn's KMeans runs
on the CPU only, restart after restart, and would pull the batch off a GPU each time. Here the
restarts are one batched tensor program: k-means++ seeding (Arthur & Vassilvitskii, 2007) from
uniform numbers drawn on the CPU from the given seed, then Lloyd steps of all restarts together,
with a convergence check (a host synchronisation) every ten steps instead of one per step. Points
are float64 whatever the device, so assignments do not turn on the device's rounding. Unlike
scikit-learn, a cluster that loses all its points keeps its centre rather than jumping to a far
point: the trainer's guard turns such degenerate relations into the identity anyway.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Lloyd steps per restart at most, and how often to ask whether any assignment still changes: on
# the relation points (1,000 × 32) every restart has settled after 20–60 steps, and one check per
# ten steps is one host synchronisation, not one per step.
MAX_LLOYD_STEPS = 100
CONVERGENCE_CHECK_EVERY = 10


def squared_distances(points: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """‖x_n − c_rk‖² for points (N, D) and centres (R, K, D) -> (R, N, K), never below 0."""
    cross = torch.einsum("nd,rkd->rnk", points, centers)
    sq = points.pow(2).sum(dim=1)[None, :, None] + centers.pow(2).sum(dim=2)[:, None, :]
    return (sq - 2 * cross).clamp_min(0.0)


def plus_plus_seeds(points: torch.Tensor, k: int, restarts: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ initial centres (R, K, D): each next centre drawn with probability ∝ squared
    distance to the nearest chosen one, by inverse CDF from CPU-drawn uniforms."""
    n = points.shape[0]
    uniforms = torch.rand(restarts, k, generator=gen, dtype=torch.float64).to(points.device)
    first = (uniforms[:, 0] * n).long().clamp(max=n - 1)
    centers = points[first][:, None]  # (R, 1, D)
    nearest = squared_distances(points, centers)[..., 0]  # (R, N)
    for j in range(1, k):
        cdf = nearest.cumsum(dim=1)
        target = uniforms[:, j : j + 1] * cdf[:, -1:]
        pick = torch.searchsorted(cdf, target, right=True).clamp(max=n - 1)[:, 0]  # (R,)
        new = points[pick][:, None]  # (R, 1, D)
        centers = torch.cat([centers, new], dim=1)
        nearest = torch.minimum(nearest, squared_distances(points, new)[..., 0])
    return centers


def nearest_centres(points: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """The label (R, N) of each point's nearest centre in every restart: argmin of ½‖c‖² − x·c
    (‖x‖² is the same for every centre), all restarts in one matrix product."""
    restarts, k, dims = centers.shape
    flat = centers.reshape(restarts * k, dims)
    scores = 0.5 * flat.pow(2).sum(dim=1) - points @ flat.T  # (N, R·K)
    return scores.view(-1, restarts, k).argmin(dim=2).T


def centre_means(points: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Each cluster's mean (R, K, D); a cluster without points keeps its centre. One matrix
    product (no atomic scatter, so the sums have one order on every device)."""
    restarts, k, dims = centers.shape
    members = F.one_hot(labels.T, k).to(points.dtype).reshape(-1, restarts * k)  # (N, R·K)
    counts = members.sum(dim=0).view(restarts, k, 1)
    sums = (members.T @ points).view(restarts, k, dims)
    return torch.where(counts > 0, sums / counts.clamp_min(1), centers)


def lloyd(
    points: torch.Tensor, centers: torch.Tensor, max_steps: int = MAX_LLOYD_STEPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd updates of every restart until no assignment changes (checked every
    CONVERGENCE_CHECK_EVERY steps) or `max_steps`; (labels (R, N), inertia (R,))."""
    labels = nearest_centres(points, centers)
    for step in range(1, max_steps + 1):
        centers = centre_means(points, labels, centers)
        previous, labels = labels, nearest_centres(points, centers)
        if step % CONVERGENCE_CHECK_EVERY == 0 and torch.equal(previous, labels):
            break
    nearest = squared_distances(points, centers).gather(2, labels[..., None])[..., 0]
    return labels, nearest.sum(dim=1)


def kmeans(points: torch.Tensor, k: int, restarts: int, seed: int) -> torch.Tensor:
    """Cluster labels (N,) of the restart with the lowest inertia, on the points' device."""
    gen = torch.Generator().manual_seed(seed)
    x = points.detach().to(torch.float64)
    labels, inertia = lloyd(x, plus_plus_seeds(x, k, restarts, gen))
    return labels.index_select(0, inertia.argmin()[None])[0]  # no host read of the index

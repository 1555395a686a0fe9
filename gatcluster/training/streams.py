"""What each outer iteration draws, and at which learning rate: seeded streams, large batches.

Every random draw of training comes from a generator derived from (seed, iteration, purpose), so
an iteration computes the same thing whether the run went through or was resumed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Purposes of derived random streams: one independent stream each per (seed, iteration).
EPOCH_ORDER, AUG_VIEW, SHUFFLE, KMEANS, SELECTION, CANDIDATE, REFIT_ORDER = range(7)


def derived_seed(seed: int, iteration: int, purpose: int) -> int:
    """An independent 63-bit seed for one random stream of one iteration."""
    return int(np.random.SeedSequence([seed, iteration, purpose]).generate_state(2, np.uint64)[0] >> 1)


def derived_generator(seed: int, iteration: int, purpose: int) -> torch.Generator:
    """A CPU torch.Generator seeded for one random stream of one iteration."""
    return torch.Generator().manual_seed(derived_seed(seed, iteration, purpose))


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random (model init and anything outside the derived streams)."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def large_batch_indices(n: int, size: int, iteration: int, seed: int) -> torch.Tensor:
    """Indices of iteration `iteration`'s large batch: the next `size` of seeded epoch permutations.

    With n <= size the large batch is all n images (in that iteration's epoch order).
    """
    if n <= size:
        return torch.randperm(n, generator=derived_generator(seed, iteration, EPOCH_ORDER))
    start, parts, taken = iteration * size, [], 0
    while taken < size:
        epoch, offset = divmod(start + taken, n)
        perm = torch.randperm(n, generator=derived_generator(seed, epoch, EPOCH_ORDER))
        part = perm[offset : offset + size - taken]
        parts.append(part)
        taken += len(part)
    return torch.cat(parts)


def refit_order(n: int, seed: int) -> torch.Tensor:
    """The seeded shuffled order in which the BatchNorm refit of all `n` images reads them (stores
    are often sorted by class; docs/method.md §4)."""
    return torch.randperm(n, generator=derived_generator(seed, 0, REFIT_ORDER))


def lr_at(iteration: int, total: int, base_lr: float, schedule: str) -> float:
    """Learning rate of an outer iteration: constant, or cosine decay to 0 over `total`."""
    if schedule == "cosine":
        return base_lr * 0.5 * (1 + math.cos(math.pi * iteration / total))
    return base_lr

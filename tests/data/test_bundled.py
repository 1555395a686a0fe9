"""Bundled real datasets: shapes, dtypes, labels, no network."""

from __future__ import annotations

import numpy as np

from gatcluster.data.bundled import BUNDLED_SOURCES


def test_mnist5k_is_5000_real_digits_500_per_class(mnist5k_dataset):
    d = mnist5k_dataset
    assert d.images.shape == (5000, 28, 28, 1) and d.images.dtype == np.uint8
    assert np.bincount(d.labels).tolist() == [500] * 10
    assert d.images.max() == 255 and d.images[:, 0].mean() < 1  # black background, white strokes
    assert d.resize_rule == "pad" and d.source == "mnist5k" and d.classes == [str(i) for i in range(10)]


def test_digits_are_1797_rescaled_8x8_images(digits_dataset):
    d = digits_dataset
    assert d.images.shape == (1797, 8, 8, 1) and d.images.dtype == np.uint8
    assert d.images.max() == 255 and set(np.unique(d.labels)) == set(range(10))
    assert d.resize_rule == "resize" and d.has_labels


def test_every_bundled_source_is_registered():
    assert set(BUNDLED_SOURCES) == {"mnist5k", "digits"}

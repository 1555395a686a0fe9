"""Stored, fitted images -> model input tensors: layout, channels, and a refused size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gatcluster.data.pixels import LUMA_WEIGHTS
from gatcluster.data.prepare import ImageSizeError, prepare_images, to_grayscale
from gatcluster.data.store import DatasetError


def test_fitted_images_become_nchw_uint8():
    images = np.arange(2 * 32 * 32, dtype=np.uint32).astype(np.uint8).reshape(2, 32, 32, 1)
    x = prepare_images(images, 32, grayscale=True)
    assert (
        x.shape == (2, 1, 32, 32)
        and x.dtype == torch.uint8
        and torch.equal(x[:, 0], torch.from_numpy(images[..., 0]))
    )


def test_images_of_another_size_are_a_dataset_error_naming_the_fix():
    with pytest.raises(ImageSizeError, match=r"28x28 pixels but the model takes 32x32 .*dvc repro fetch"):
        prepare_images(np.zeros((1, 28, 28, 1), np.uint8), 32, grayscale=True)
    assert issubclass(ImageSizeError, DatasetError)  # stages report it as a data problem (exit 1)


def test_grayscale_uses_luma_weights():
    rgb = torch.tensor([1.0, 0.5, 0.25]).view(1, 3, 1, 1)
    expected = sum(w * v for w, v in zip(LUMA_WEIGHTS, (1.0, 0.5, 0.25), strict=True))
    assert to_grayscale(rgb).item() == np.float32(expected)
    gray = torch.rand(2, 1, 4, 4)
    assert to_grayscale(gray) is gray


def test_rgb_models_get_three_channels_from_gray_data():
    images = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    x = prepare_images(images, 4, grayscale=False)
    assert x.shape == (1, 3, 4, 4) and torch.equal(x[:, 0], x[:, 2])
    rgb = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    assert prepare_images(rgb, 4, grayscale=True).shape == (1, 3, 4, 4)  # views convert, after colour jitter

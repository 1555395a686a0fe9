"""Fitting stored images to the model input: padding, resizing, channels."""

from __future__ import annotations

import numpy as np
import torch

from gatcluster.data.prepare import LUMA_WEIGHTS, fit_size, prepare_images, to_grayscale


def test_padding_centres_a_28px_image_in_32px():
    images = np.full((2, 28, 28, 1), 200, dtype=np.uint8)
    x = prepare_images(images, 32, "pad", grayscale=True)
    assert x.shape == (2, 1, 32, 32) and x.dtype == torch.uint8
    assert x[:, :, 2:30, 2:30].eq(200).all() and x.sum() == 2 * 28 * 28 * 200


def test_resize_rule_and_oversized_pad_resize_bilinearly():
    images = torch.full((1, 1, 8, 8), 100, dtype=torch.uint8)
    assert fit_size(images, 32, "resize").eq(100).all()
    big = torch.full((1, 1, 40, 40), 50, dtype=torch.uint8)
    assert fit_size(big, 32, "pad").shape == (1, 1, 32, 32)  # cannot pad down: resized instead


def test_matching_size_is_returned_unchanged():
    images = torch.randint(0, 255, (3, 1, 32, 32), dtype=torch.uint8)
    assert fit_size(images, 32, "resize") is images


def test_grayscale_uses_luma_weights():
    rgb = torch.tensor([1.0, 0.5, 0.25]).view(1, 3, 1, 1)
    expected = sum(w * v for w, v in zip(LUMA_WEIGHTS, (1.0, 0.5, 0.25), strict=True))
    assert to_grayscale(rgb).item() == np.float32(expected)
    gray = torch.rand(2, 1, 4, 4)
    assert to_grayscale(gray) is gray


def test_rgb_models_get_three_channels_from_gray_data():
    images = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    x = prepare_images(images, 4, "resize", grayscale=False)
    assert x.shape == (1, 3, 4, 4) and torch.equal(x[:, 0], x[:, 2])
    rgb = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    assert prepare_images(rgb, 4, "resize", grayscale=True).shape == (1, 3, 4, 4)  # views convert

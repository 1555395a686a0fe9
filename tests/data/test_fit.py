"""Fitting images to the model input: the three rules of the one fitting function."""

from __future__ import annotations

import numpy as np
import pytest

from gatcluster.data.fit import FIT_RULE, fit_images


def test_pad_centres_a_28px_image_in_32px():
    images = np.full((2, 28, 28, 1), 200, dtype=np.uint8)
    x = fit_images(images, 32, "pad")
    assert x.shape == (2, 32, 32, 1) and x.dtype == np.uint8
    assert (x[:, 2:30, 2:30] == 200).all() and x.astype(int).sum() == 2 * 28 * 28 * 200


def test_resize_scales_both_sides_and_an_oversized_pad_resizes():
    assert (fit_images(np.full((1, 8, 8, 1), 100, np.uint8), 32, "resize") == 100).all()
    tall = np.zeros((1, 40, 20, 3), np.uint8)
    tall[:, :20] = 255  # top half white: a squash keeps it the top half
    fitted = fit_images(tall, 32, "resize")
    assert fitted.shape == (1, 32, 32, 3) and fitted[0, :14].min() == 255 and fitted[0, 18:].max() == 0
    assert fit_images(np.full((1, 40, 40, 1), 50, np.uint8), 32, "pad").shape == (1, 32, 32, 1)


def test_fit_rule_resizes_the_shorter_side_and_centre_crops():
    wide = np.zeros((1, 20, 60, 3), dtype=np.uint8)
    wide[:, :, 20:40] = 255  # the centre third survives the crop and fills the whole output
    fitted = fit_images(wide, 10, FIT_RULE)
    assert fitted.shape == (1, 10, 10, 3) and fitted.dtype == np.uint8
    assert fitted[0, :, 2:-2].min() > 200  # centre columns stay white (bilinear edges aside)
    small = np.full((1, 4, 6, 1), 77, dtype=np.uint8)
    assert (fit_images(small, 16, FIT_RULE) == 77).all()  # one channel kept, upscaled


@pytest.mark.parametrize("rule", ["pad", "resize", FIT_RULE])
def test_images_already_at_the_size_are_returned_unchanged(rule):
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    assert fit_images(images, 32, rule) is images


def test_read_only_decoded_arrays_are_fitted_without_touching_them():
    images = np.full((1, 8, 8, 1), 9, np.uint8)
    images.flags.writeable = False
    assert fit_images(images, 16, "pad").shape == (1, 16, 16, 1)


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown resize rule 'stretch'"):
        fit_images(np.zeros((1, 8, 8, 1), np.uint8), 32, "stretch")


def test_resize_is_torch_bilinear_antialiased_to_one_grey_level():
    # fit.py is NumPy + Pillow (serving runs without torch); data fetched before stays what it was.
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    for shape in ((4, 8, 8, 1), (4, 8, 8, 3), (4, 100, 70, 3), (4, 40, 40, 1)):
        images = rng.integers(0, 256, shape, dtype=np.uint8)
        want = F.interpolate(
            torch.from_numpy(images).permute(0, 3, 1, 2).float(),
            size=(32, 32),
            mode="bilinear",
            antialias=True,
        )
        want = want.round().clamp(0, 255).permute(0, 2, 3, 1).numpy()
        diff = np.abs(fit_images(images, 32, "resize").astype(float) - want)
        assert diff.max() <= 1
        assert (diff > 0).mean() < 0.01
        if shape[1] < 32:
            assert diff.max() == 0  # enlarging: identical

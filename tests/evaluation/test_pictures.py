"""Attention pictures: overlay colours where attention is, grids lay tiles out in rows."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gatcluster.evaluation.pictures import attention_grid, attention_overlay, bilinear_resize, picture_grid


def test_overlay_tints_only_where_the_map_is_high():
    image = np.full((1, 8, 8), 100, dtype=np.uint8)
    att = np.zeros((4, 4), dtype=np.float32)
    att[0, 0] = 1.0
    picture = np.asarray(attention_overlay(image, att, scale=2))
    assert picture.shape == (16, 16, 3)
    assert picture[0, 0, 0] > picture[0, 0, 2]  # red where attention is 1
    assert tuple(picture[15, 15]) == (100, 100, 100)  # untouched where it is 0


def test_grid_layout_and_size():
    tiles = [attention_overlay(np.zeros((3, 4, 4), np.uint8), np.zeros((2, 2))) for _ in range(5)]
    grid = picture_grid(tiles, columns=2, gap=1)
    assert grid.size == (2 * 16 + 1, 3 * 16 + 2)
    assert attention_grid(np.zeros((3, 1, 8, 8), np.uint8), np.random.rand(3, 4, 4)).size == (
        3 * 32 + 4,
        32,
    )


def test_bilinear_resize_matches_torch_interpolate():
    # The overlay's upsampling is NumPy (serving runs without torch) but must draw what torch's did.
    plane = np.random.default_rng(0).random((7, 7), dtype=np.float32)
    for size in ((7, 7), (20, 20), (28, 56)):
        want = F.interpolate(
            torch.from_numpy(plane)[None, None], size=size, mode="bilinear", align_corners=False
        )
        assert np.allclose(bilinear_resize(plane, size), want[0, 0].numpy(), atol=1e-6)

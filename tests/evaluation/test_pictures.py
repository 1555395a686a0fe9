"""Attention pictures: overlay colours where attention is, grids lay tiles out in rows."""

from __future__ import annotations

import numpy as np
import torch

from gatcluster.evaluation.pictures import attention_grid, attention_overlay, picture_grid


def test_overlay_tints_only_where_the_map_is_high():
    image = torch.full((1, 8, 8), 100, dtype=torch.uint8)
    att = torch.zeros(4, 4)
    att[0, 0] = 1.0
    picture = np.asarray(attention_overlay(image, att, scale=2))
    assert picture.shape == (16, 16, 3)
    assert picture[0, 0, 0] > picture[0, 0, 2]  # red where attention is 1
    assert tuple(picture[15, 15]) == (100, 100, 100)  # untouched where it is 0


def test_grid_layout_and_size():
    tiles = [attention_overlay(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(2, 2)) for _ in range(5)]
    grid = picture_grid(tiles, columns=2, gap=1)
    assert grid.size == (2 * 16 + 1, 3 * 16 + 2)
    assert attention_grid(torch.zeros(3, 1, 8, 8, dtype=torch.uint8), torch.rand(3, 4, 4)).size == (
        3 * 32 + 4,
        32,
    )

"""Pictures for people: attention maps laid over the images they were computed on.

Pure functions from arrays to PIL images; the caller decides where to save them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

OVERLAY_COLOUR = np.array([255, 40, 0], dtype=np.float32)  # attention drawn in red-orange
OVERLAY_STRENGTH = 0.6


def attention_overlay(image: torch.Tensor, att_map: torch.Tensor, scale: int = 4) -> Image.Image:
    """uint8 image (C, H, W) with its attention map (S, S) blended on top, enlarged `scale` times."""
    c, h, w = image.shape
    size = (h * scale, w * scale)
    rgb = image.float().expand(3, -1, -1) if c == 1 else image.float()
    rgb = F.interpolate(rgb[None], size=size, mode="nearest")[0].permute(1, 2, 0).numpy()  # (H', W', 3)
    weight = F.interpolate(att_map[None, None].float(), size=size, mode="bilinear", align_corners=False)
    alpha = (weight[0, 0].clamp(0, 1).numpy() * OVERLAY_STRENGTH)[..., None]  # (H', W', 1)
    blended = rgb * (1 - alpha) + OVERLAY_COLOUR * alpha
    return Image.fromarray(blended.round().clip(0, 255).astype(np.uint8))


def picture_grid(tiles: list[Image.Image], columns: int = 8, gap: int = 2) -> Image.Image:
    """Equal-sized tiles in rows of `columns`, separated by `gap` white pixels."""
    if not tiles:
        raise ValueError("no pictures to lay out")
    w, h = tiles[0].size
    rows = math.ceil(len(tiles) / columns)
    cols = min(columns, len(tiles))
    grid = Image.new("RGB", (cols * (w + gap) - gap, rows * (h + gap) - gap), "white")
    for i, tile in enumerate(tiles):
        grid.paste(tile, ((i % columns) * (w + gap), (i // columns) * (h + gap)))
    return grid


def attention_grid(images: torch.Tensor, att_maps: torch.Tensor, columns: int = 8) -> Image.Image:
    """A grid of attention overlays for uint8 images (N, C, H, W) and their maps (N, S, S)."""
    return picture_grid([attention_overlay(x, a) for x, a in zip(images, att_maps, strict=True)], columns)

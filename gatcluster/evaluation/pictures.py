"""Pictures for people: attention maps laid over the images they were computed on.

Pure functions from NumPy arrays to PIL images (no torch: `gat predict --attention-dir` and its
gallery run without it); the caller decides where to save them.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

OVERLAY_COLOUR = np.array([255, 40, 0], dtype=np.float32)  # attention drawn in red-orange
OVERLAY_STRENGTH = 0.6


def attention_overlay(image: np.ndarray, att_map: np.ndarray, scale: int = 4) -> Image.Image:
    """uint8 image (C, H, W) with its attention map (S, S) blended on top, enlarged `scale` times."""
    c, h, w = image.shape
    rgb = np.broadcast_to(image, (3, h, w)) if c == 1 else image
    rgb = rgb.repeat(scale, axis=1).repeat(scale, axis=2).transpose(1, 2, 0).astype(np.float32)
    weight = bilinear_resize(np.asarray(att_map, dtype=np.float32), (h * scale, w * scale))
    alpha = (weight.clip(0, 1) * OVERLAY_STRENGTH)[..., None]  # (H', W', 1)
    blended = rgb * (1 - alpha) + OVERLAY_COLOUR * alpha
    return Image.fromarray(blended.round().clip(0, 255).astype(np.uint8))


def bilinear_resize(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Float (S, S') -> (H, W), bilinear with pixel centres aligned (torch's align_corners=False)."""
    rows = _linear_weights(plane.shape[0], size[0])
    cols = _linear_weights(plane.shape[1], size[1])
    return rows @ plane @ cols.T


def _linear_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of 1-D linear interpolation, half-pixel centres, edges clamped."""
    centres = ((np.arange(n_out) + 0.5) * n_in / n_out - 0.5).clip(0, n_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    frac = (centres - low).astype(np.float32)
    weights = np.zeros((n_out, n_in), dtype=np.float32)
    np.add.at(weights, (np.arange(n_out), low), 1 - frac)
    np.add.at(weights, (np.arange(n_out), high), frac)
    return weights


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


def attention_grid(images: np.ndarray, att_maps: np.ndarray, columns: int = 8) -> Image.Image:
    """A grid of attention overlays for uint8 images (N, C, H, W) and their maps (N, S, S)."""
    return picture_grid([attention_overlay(x, a) for x, a in zip(images, att_maps, strict=True)], columns)

"""Stored (already fitted) images -> the model's input tensor: layout and channels, never size.

Images are fitted to the model input once, where they enter (`data.fit`); a size that does not
match here means the data set was fetched for another backbone (`model.backbone`), and that is an error.
"""

from __future__ import annotations

import numpy as np
import torch

from gatcluster.data.pixels import LUMA_WEIGHTS
from gatcluster.data.store import DatasetError


class ImageSizeError(DatasetError):
    """Stored images are not the size the model takes (fetched for another model.backbone)."""


def to_tensor_nchw(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) array -> uint8 (N, C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """Float (N, 3, H, W) -> (N, 1, H, W) luma; 1-channel input is returned as is."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def check_image_size(images: np.ndarray, size: int) -> None:
    """Stored (N, H, W, C) images must be size × size: else fetched for another model.backbone."""
    if images.shape[1:3] != (size, size):
        h, w = images.shape[1:3]
        raise ImageSizeError(
            f"the stored images are {h}x{w} pixels but the model takes {size}x{size} (model.backbone): "
            "fetch the data again for this size (dvc repro fetch)"
        )


def prepare_images(images: np.ndarray, size: int, grayscale: bool) -> torch.Tensor:
    """Fitted uint8 (N, size, size, C) -> uint8 (N, C', size, size), C' = 3 only for RGB models.

    Colour stays colour even for a grayscale model: the views jitter colour first, then convert.
    """
    check_image_size(images, size)
    x = to_tensor_nchw(images)
    if not grayscale and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1).contiguous()
    return x

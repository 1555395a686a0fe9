"""Fit stored images to the model input: size (pad or bilinear resize) and channels."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# ITU-R 601-2 luma, as PIL's "L" mode and torchvision's Grayscale use.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def to_tensor_nchw(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) array -> uint8 (N, C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def fit_size(images: torch.Tensor, size: int, rule: str) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size) by centred zero padding or bilinear resize."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if rule == "pad" and h <= size and w <= size:
        top, left = (size - h) // 2, (size - w) // 2
        return F.pad(images, (left, size - w - left, top, size - h - top))
    resized = F.interpolate(
        images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return resized.round().clamp(0, 255).to(torch.uint8)


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """Float (N, 3, H, W) -> (N, 1, H, W) luma; 1-channel input is returned as is."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def prepare_images(images: np.ndarray, size: int, rule: str, grayscale: bool) -> torch.Tensor:
    """Stored uint8 (N, H, W, C) -> uint8 (N, C', size, size), C' = 3 only for RGB models.

    RGB stays RGB here even for a grayscale model when hue jitter may need colour; views convert.
    """
    x = fit_size(to_tensor_nchw(images), size, rule)
    if not grayscale and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1).contiguous()
    return x

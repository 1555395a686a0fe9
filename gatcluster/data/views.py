"""The clean and augmented views of a batch (docs/method.md §5), batched on the tensor's device.

Augmented view, in the authors' order: horizontal flip -> colour jitter (brightness, contrast, hue)
-> random affine (rotation, translation, scale, x-shear) -> grayscale. Parameters are drawn per
image from an explicit generator, so a seed fixes the view on any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gatcluster.config.params import AugmentConfig
from gatcluster.data.prepare import to_grayscale


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen, dtype=torch.float64).mul(hi - lo).add(lo).float()


def clean_view(images: torch.Tensor, grayscale: bool) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float [0, 1] (torch's default dtype, float32 unless set), grey when asked."""
    x = images.to(torch.get_default_dtype()).div(255.0)
    return to_grayscale(x) if grayscale else x


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flip each image left-right with probability 0.5."""
    mask = torch.rand(len(x), generator=gen) < 0.5
    return torch.where(mask.to(x.device)[:, None, None, None], x.flip(-1), x)


def jitter_brightness_contrast(
    x: torch.Tensor, brightness: float, contrast: float, gen: torch.Generator
) -> torch.Tensor:
    """torchvision's brightness then contrast jitter, one factor per image, clamped to [0, 1]."""
    n = len(x)
    if brightness > 0:
        b = _uniform(n, max(0.0, 1 - brightness), 1 + brightness, gen).to(x.device)
        x = (x * b[:, None, None, None]).clamp(0, 1)
    if contrast > 0:
        c = _uniform(n, max(0.0, 1 - contrast), 1 + contrast, gen).to(x.device)[:, None, None, None]
        mean = to_grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
        x = (c * x + (1 - c) * mean).clamp(0, 1)
    return x


def jitter_hue(x: torch.Tensor, hue: float, gen: torch.Generator) -> torch.Tensor:
    """Shift the hue of each RGB image by a factor in [−hue, hue]; grey images are refused, not ignored."""
    if hue <= 0:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"hue jitter needs colour images, got {x.shape[1]} channel(s): set augment.hue: 0")
    # Imported here: torchvision's transforms take about a second to import, and every stage and
    # `gat` process would pay it for a jitter that is off on greyscale data.
    from torchvision.transforms.v2 import functional as TF

    factors = _uniform(len(x), -hue, hue, gen).tolist()
    return torch.stack([TF.adjust_hue(img, f) for img, f in zip(x, factors, strict=True)])


def affine_matrices(n: int, cfg: AugmentConfig, size: int, gen: torch.Generator) -> torch.Tensor:
    """Inverse affine maps (n, 2, 3) in normalised coordinates for `F.affine_grid`."""
    angle = _uniform(n, -cfg.degrees, cfg.degrees, gen) * (math.pi / 180)
    shear = _uniform(n, -cfg.shear, cfg.shear, gen) * (math.pi / 180)
    scale = _uniform(n, cfg.scale[0], cfg.scale[1], gen)
    # torchvision draws whole-pixel translations in [−t·W, t·W]; ×2/size maps pixels to [-1, 1].
    shift = _uniform(2 * n, -cfg.translate * size, cfg.translate * size, gen).round().view(n, 2) * (2 / size)
    cos, sin, tan = angle.cos(), angle.sin(), shear.tan()
    # forward A = scale · R(angle) · Shear_x(shear); the grid needs its inverse.
    forward = torch.stack([torch.stack([cos, cos * tan - sin], 1), torch.stack([sin, sin * tan + cos], 1)], 1)
    forward = forward * scale[:, None, None]  # (n, 2, 2)
    inverse = torch.linalg.inv(forward)
    offset = -(inverse @ shift[:, :, None])  # (n, 2, 1)
    return torch.cat([inverse, offset], dim=2)


def random_affine(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Rotate, translate, scale and shear each image in one resampling; outside pixels are black."""
    theta = affine_matrices(len(x), cfg, x.shape[-1], gen).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augmented_view(
    images: torch.Tensor, cfg: AugmentConfig, grayscale: bool, gen: torch.Generator
) -> torch.Tensor:
    """uint8 (N, C, H, W) -> one random float view per image, in the authors' order, in torch's
    default dtype (float32 unless set, as `clean_view`)."""
    x = images.to(torch.get_default_dtype()).div(255.0)
    if cfg.flip:
        x = random_flip(x, gen)
    x = jitter_brightness_contrast(x, cfg.brightness, cfg.contrast, gen)
    x = jitter_hue(x, cfg.hue, gen)
    x = random_affine(x, cfg, gen)
    return to_grayscale(x) if grayscale else x

"""Fitting images to the model input: one function, applied once, where images enter.

`fit_images` is called by the fetch stage for every data set (stored fitted, with the rule in the
manifest) and by `gat predict` for every new file, so a file becomes the same array at training
and at prediction time. Later stages trust the manifest and never resize again. The rules (the
`resize_rule` of the manifest and of the ONNX model contract):
- "pad": centred zero padding when the image fits (28-px MNIST digits -> 32), bilinear resize
  (antialiased) when it does not;
- "resize": bilinear resize of both sides (antialiased when shrinking), aspect ratio not kept
  (8-px sklearn digits -> 32);
- FIT_RULE: the shorter side resized to the target (Pillow bilinear, antialiased when shrinking),
  the longer side centre-cropped: no distortion and no padding (image files, ImageNet trees).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

FIT_RULE = "shorter-side-bilinear-centre-crop"
RULES = ("pad", "resize", FIT_RULE)


def fit_images(images: np.ndarray, size: int, rule: str) -> np.ndarray:
    """uint8 (N, H, W, C) -> uint8 (N, size, size, C) by `rule` (one of RULES); unchanged if already sized."""
    if rule not in RULES:
        raise ValueError(f"unknown resize rule {rule!r}; known: {', '.join(RULES)}")
    if images.shape[1:3] == (size, size):
        return images
    if rule == FIT_RULE:
        out = np.empty((len(images), size, size, images.shape[3]), dtype=np.uint8)
        for i, image in enumerate(images):
            out[i] = _fit_crop(image, size)
        return out
    writable = np.require(images, requirements=["C", "W"])  # copies only read-only (decoded) arrays
    return _fit_tensor(torch.from_numpy(writable).permute(0, 3, 1, 2), size, rule)


def _fit_crop(array: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, C) -> (size, size, C): shorter side resized (Pillow bilinear), centre crop."""
    channels = array.shape[2]
    image = Image.fromarray(array[..., 0] if channels == 1 else array)
    fitted = ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR, centering=(0.5, 0.5))
    return np.asarray(fitted, dtype=np.uint8).reshape(size, size, channels)


def _fit_tensor(images: torch.Tensor, size: int, rule: str) -> np.ndarray:
    """uint8 (N, C, H, W) -> uint8 (N, size, size, C) by centred zero padding or bilinear resize."""
    h, w = images.shape[-2:]
    if rule == "pad" and h <= size and w <= size:
        top, left = (size - h) // 2, (size - w) // 2
        fitted = F.pad(images, (left, size - w - left, top, size - h - top))
    else:
        resized = F.interpolate(
            images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        fitted = resized.round().clamp(0, 255).to(torch.uint8)
    return fitted.permute(0, 2, 3, 1).contiguous().numpy()

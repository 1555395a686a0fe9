"""Fitting images to the model input: one function, applied once, where images enter.

`fit_images` is called by the fetch stage for every data set (stored fitted, with the rule in the
manifest); an image file is decoded and fitted by `decode_fitted`, for fetch's image trees and for
`gat predict`'s files alike, so a file becomes the same array at training and at prediction time.
Later stages trust the manifest and never resize again. The rules (the
`resize_rule` of the manifest and of the ONNX model contract):
- "pad": centred zero padding when the image fits (28-px MNIST digits -> 32), bilinear resize
  (antialiased) when it does not;
- "resize": bilinear resize of both sides (antialiased when shrinking), aspect ratio not kept
  (8-px sklearn digits -> 32);
- FIT_RULE: the shorter side resized to the target (Pillow bilinear, antialiased when shrinking),
  the longer side centre-cropped: no distortion and no padding (image files, ImageNet trees).

NumPy and Pillow only, so `gat predict` runs without torch. The bilinear resize works on float
pixels (Pillow's "F" mode) and rounds once, as torch's `interpolate(..., antialias=True)` did
before (identical when enlarging, at most 1 grey level apart on 0.2 % of pixels when shrinking).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from gatcluster.data.images import ImageDecodeError, load_image
from gatcluster.data.walk import SkippedFile

FIT_RULE = "shorter-side-bilinear-centre-crop"
RULES = ("pad", "resize", FIT_RULE)
DECODE_CHANNELS = 3  # files are decoded in colour; a grey model takes luma later (the clean view)


def decode_fitted(path: Path, size: int, rule: str, reduced_jpeg: bool = True) -> np.ndarray | SkippedFile:
    """One image file decoded in colour and fitted by `rule`, uint8 (size, size, 3), or why it was
    skipped: what fetch stores for an image tree and what `gat predict` feeds the model. JPEGs decode
    at the reduced scale (`images.JPEG_SCALE`) unless `reduced_jpeg` is False (older models)."""
    try:
        image = load_image(path, DECODE_CHANNELS, size if reduced_jpeg else None)
        return fit_images(image[None], size, rule)[0]
    except ImageDecodeError as err:
        return SkippedFile(path, str(err))
    except OSError as err:  # a read error past the file's opening (EIO on a failing disk)
        return SkippedFile(path, f"unreadable ({err.strerror or err})")


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
    return _fit_pad_or_resize(images, size, rule)


def _fit_crop(array: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, C) -> (size, size, C): shorter side resized (Pillow bilinear), centre crop."""
    channels = array.shape[2]
    image = Image.fromarray(array[..., 0] if channels == 1 else array)
    fitted = ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR, centering=(0.5, 0.5))
    return np.asarray(fitted, dtype=np.uint8).reshape(size, size, channels)


def _fit_pad_or_resize(images: np.ndarray, size: int, rule: str) -> np.ndarray:
    """uint8 (N, H, W, C) -> uint8 (N, size, size, C) by centred zero padding or bilinear resize."""
    n, h, w, c = images.shape
    if rule == "pad" and h <= size and w <= size:
        top, left = (size - h) // 2, (size - w) // 2
        return np.pad(images, ((0, 0), (top, size - h - top), (left, size - w - left), (0, 0)))
    out = np.empty((n, size, size, c), dtype=np.uint8)
    for i in range(n):
        for ch in range(c):
            out[i, :, :, ch] = _resize_plane(images[i, :, :, ch], size)
    return out


def _resize_plane(plane: np.ndarray, size: int) -> np.ndarray:
    """One uint8 (H, W) plane -> (size, size): bilinear on float pixels (antialiased when shrinking)."""
    image = Image.fromarray(plane.astype(np.float32), "F")
    resized = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)

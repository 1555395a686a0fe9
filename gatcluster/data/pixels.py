"""The clean view in NumPy: fitted uint8 pixels -> the float input an exported model takes.

Training computes the clean view with torch on its device (`views.clean_view`); `gat predict`
runs without torch, so it computes the same view here. tests/data/test_pixels.py holds the two
equal.
"""

from __future__ import annotations

import numpy as np

# ITU-R 601-2 luma, as PIL's "L" mode and torchvision's Grayscale use.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def clean_view_array(fitted: np.ndarray, grayscale: bool) -> np.ndarray:
    """Fitted uint8 (N, S, S, C) -> float32 (N, C', S, S) in [0, 1]; C' = 1 (luma) when `grayscale`."""
    x = np.ascontiguousarray(fitted.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
    if grayscale and x.shape[1] == 3:
        weights = np.asarray(LUMA_WEIGHTS, dtype=np.float32).reshape(1, 3, 1, 1)
        x = (x * weights).sum(axis=1, keepdims=True, dtype=np.float32)
    return x

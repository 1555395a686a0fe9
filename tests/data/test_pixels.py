"""The NumPy clean view (serving) equals the torch one (training) on the same fitted pixels."""

from __future__ import annotations

import numpy as np
import pytest

from gatcluster.data.pixels import clean_view_array
from gatcluster.data.prepare import to_tensor_nchw
from gatcluster.data.views import clean_view


@pytest.mark.parametrize("grayscale", [True, False])
@pytest.mark.parametrize("channels", [1, 3])
def test_numpy_clean_view_equals_the_training_one(grayscale, channels):
    fitted = np.random.default_rng(0).integers(0, 256, (5, 12, 12, channels), dtype=np.uint8)
    want = clean_view(to_tensor_nchw(fitted), grayscale).numpy()
    got = clean_view_array(fitted, grayscale)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.allclose(got, want, rtol=0, atol=1e-6)

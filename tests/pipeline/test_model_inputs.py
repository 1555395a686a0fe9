"""The stages after training read the fetched images as the trained model's input."""

from __future__ import annotations

import numpy as np
import pytest

from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params
from gatcluster.data.prepare import ImageSizeError
from gatcluster.data.store import ImageDataset
from gatcluster.pipeline.model_inputs import trained_model_images


def dataset_of(side: int) -> ImageDataset:
    """Five grey images of side × side pixels."""
    return ImageDataset(np.zeros((5, side, side, 1), np.uint8), None, [], "folder", "resize")


def test_images_of_the_trained_size_are_the_model_input():
    images = trained_model_images(dataset_of(32), Params())  # small32, as trained
    assert len(images) == 5 and tuple(images[np.arange(2)].shape) == (2, 1, 32, 32)


def test_images_fetched_for_another_backbone_since_say_to_train_again():
    # params.yaml moved to stl96 and fetch ran; the model was trained at 32 px: a retrain is the fix.
    with pytest.raises(
        ImageSizeError, match=r"are 96x96 pixels but the trained model takes 32x32 .*trains again"
    ):
        trained_model_images(dataset_of(96), replace_params(Params(), {"model.backbone": "small32"}))

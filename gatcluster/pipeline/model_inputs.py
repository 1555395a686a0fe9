"""The fetched images as a trained model's input, for the stages after training (evaluate, export)."""

from __future__ import annotations

from gatcluster.config.params import Params
from gatcluster.data.model_images import ModelImages
from gatcluster.data.prepare import ImageSizeError
from gatcluster.data.store import ImageDataset


def trained_model_images(dataset: ImageDataset, trained: Params) -> ModelImages:
    """`dataset` as the input of the model trained with `trained`. Images fetched for another
    backbone since then are an ImageSizeError saying to train again: a fetch alone (the trainer's
    advice for the same mismatch) would not help here."""
    size = trained.model.input_size
    height, width = dataset.images.shape[1:3]
    if (height, width) != (size, size):
        raise ImageSizeError(
            f"the stored images are {height}x{width} pixels but the trained model takes {size}x{size}"
            f" (model.backbone {trained.model.backbone}): run dvc repro, which trains again on them"
        )
    return ModelImages(dataset.images, size, trained.data.grayscale)

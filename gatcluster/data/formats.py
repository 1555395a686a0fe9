"""Readers of the extracted files of torchvision's download sources: MNIST idx, CIFAR pickles, STL-10.

Each reader takes the folder that torchvision's layout puts the files in and returns train and test
combined (the paper's protocol) as an `ImageDataset`. They check structure (magic numbers, sizes,
label ranges) rather than md5 sums, so an offline copy or a small test archive reads as well as
the official files; the download path verifies the archives' md5 sums instead.
CIFAR files are Python pickles: `sources` checks each against its published md5 before they are read here.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from gatcluster.data.bundled import DIGIT_CLASSES
from gatcluster.data.store import DatasetError, ImageDataset

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
CIFAR100_FILES = ("train", "test", "meta")
STL10_FILES = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt")
CIFAR_SIDE, STL10_SIDE = 32, 96


def read_mnist(folder: Path) -> ImageDataset:
    """MNIST's 70,000 digits (train + t10k) as uint8 (N, 28, 28, 1), labels 0–9."""
    return _read_mnist_layout(folder, "mnist", DIGIT_CLASSES)


def read_fashion_mnist(folder: Path) -> ImageDataset:
    """Fashion-MNIST's 70,000 images (train + t10k) as uint8 (N, 28, 28, 1), labels 0–9."""
    return _read_mnist_layout(folder, "fashion-mnist", FASHION_CLASSES)


def read_cifar10(folder: Path) -> ImageDataset:
    """CIFAR-10's 60,000 images (5 train batches + test) as uint8 (N, 32, 32, 3), labels 0–9."""
    batches = [_unpickle(folder / name) for name in CIFAR10_FILES[:-1]]
    classes = _unpickle(folder / "batches.meta")["label_names"]
    return _cifar_dataset(batches, "labels", classes, "cifar10")


def read_cifar100_20(folder: Path) -> ImageDataset:
    """CIFAR-100's 60,000 images (train + test) with the 20 official coarse (superclass) labels."""
    batches = [_unpickle(folder / name) for name in ("train", "test")]
    classes = _unpickle(folder / "meta")["coarse_label_names"]
    return _cifar_dataset(batches, "coarse_labels", classes, "cifar100-20")


def read_stl10(folder: Path) -> ImageDataset:
    """STL-10's 13,000 labelled images (train + test; the unlabelled split unused) as (N, 96, 96, 3)."""
    parts = [_read_stl10_split(folder, split) for split in ("train", "test")]
    classes = [line.strip() for line in (folder / "class_names.txt").read_text().splitlines() if line.strip()]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    if labels.max() >= len(classes):  # an edited or cut class list: name the file, not just the range
        top, names = labels.max() + 1, folder / "class_names.txt"
        raise DatasetError(f"{names} names {len(classes)} classes, but the labels go up to {top}")
    return checked(ImageDataset(images, labels, classes, "stl10", "resize"))


def checked(dataset: ImageDataset) -> ImageDataset:
    """`dataset` after checking one label per image, each naming a class; DatasetError otherwise."""
    labels, count = dataset.labels, len(dataset.images)
    if labels is not None and len(labels) != count:
        raise DatasetError(f"{dataset.source}: {count} images but {len(labels)} labels")
    if labels is not None and count and not 0 <= labels.min() <= labels.max() < len(dataset.classes):
        raise DatasetError(f"{dataset.source}: labels outside 0..{len(dataset.classes) - 1}")
    return dataset


def one_label_each(images: np.ndarray, labels: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One split's images and labels, after checking that it has images of some size and one label
    for each: splits are joined, and a split's missing label would shift every label after it."""
    if len(images) == 0 or images[0].size == 0:
        raise DatasetError(f"{where} holds no images")
    if len(labels) != len(images):
        raise DatasetError(f"{where}: {len(images)} images but {len(labels)} labels")
    return images, labels


def _read_mnist_layout(folder: Path, name: str, classes: list[str]) -> ImageDataset:
    parts = [
        one_label_each(
            _read_idx(folder / f"{split}-images-idx3-ubyte", 3),
            _read_idx(folder / f"{split}-labels-idx1-ubyte", 1),
            f"{folder / split}-*-ubyte",
        )
        for split in ("train", "t10k")
    ]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return checked(ImageDataset(images[..., None], labels.astype(np.int64), list(classes), name, "pad"))


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An idx file of uint8 values: magic 0x0800 + ndim, then ndim big-endian uint32 sizes, then data."""
    data = path.read_bytes()
    header = 4 * (ndim + 1)
    if len(data) < header or int.from_bytes(data[:4], "big") != 0x0800 + ndim:
        raise DatasetError(f"{path} is not an idx file of {ndim}-d uint8 data")
    shape = tuple(int.from_bytes(data[4 * i : 4 * i + 4], "big") for i in range(1, ndim + 1))
    if len(data) - header != math.prod(shape):
        raise DatasetError(f"{path} holds {len(data) - header} values, its header says {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _unpickle(path: Path) -> dict[str, Any]:
    """A CIFAR pickle (written by Python 2: latin1 keeps its numpy arrays intact), keys as str."""
    with path.open("rb") as handle:
        content = pickle.load(handle, encoding="latin1")
    return {_text(key): value for key, value in content.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _cifar_dataset(batches: list[dict], label_key: str, classes: list, name: str) -> ImageDataset:
    """Rows of 3,072 bytes (R, G, B planes of 32×32) -> (N, 32, 32, 3)."""
    parts = [
        one_label_each(
            np.asarray(b["data"], dtype=np.uint8).reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE),
            np.asarray(b[label_key], dtype=np.int64),
            f"{name} batch {i + 1} of {len(batches)}",
        )
        for i, b in enumerate(batches)
    ]
    images = np.ascontiguousarray(np.concatenate([images for images, _ in parts]).transpose(0, 2, 3, 1))
    labels = np.concatenate([labels for _, labels in parts])
    return checked(ImageDataset(images, labels, [_text(c) for c in classes], name, "resize"))


def _read_stl10_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """STL-10 binaries: images as 3 column-major 96×96 planes each, labels 1–10 on disk."""
    raw = np.fromfile(folder / f"{split}_X.bin", dtype=np.uint8)
    images = raw.reshape(-1, 3, STL10_SIDE, STL10_SIDE).transpose(0, 3, 2, 1)  # (N, C, W, H) -> (N, H, W, C)
    labels = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
    return one_label_each(np.ascontiguousarray(images), labels, f"{folder / split}_[Xy].bin")

"""The one on-disk dataset format: uint8 image array, labels, and a JSON manifest.

The fetch stage writes it once; training reads arrays and never decodes image files in its loop.
Writes go to a temporary folder renamed into place, so an interrupted write leaves nothing half done.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gatcluster.atomic import make_temp_dir, publish_dir
from gatcluster.data.fit import fit_images
from gatcluster.data.images import preprocessing_record, reduces_jpeg
from gatcluster.data.walk import SkippedFile
from gatcluster.path_text import shown_path

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SKIPPED_FILE = "skipped.tsv"  # every file an image tree's fetch left out, with its reason
PROJECT_DATASET_DIR = Path("data") / "dataset"  # where the pipeline keeps it, relative to the project
BLOCK_BYTES = 4 * 2**20  # bytes of rows hashed, written or decoded between releases of mapped pages


class DatasetError(RuntimeError):
    """A stored dataset is missing or inconsistent."""


@dataclass(frozen=True)
class ImageDataset:
    """Images as uint8 (N, H, W, C), optional int64 labels (N,), class names, and how they are fitted.

    resize_rule: the `data.fit` rule that maps this source's images to the model input (applied by
    `fit_dataset` at fetch; image trees are fitted by it as their files are decoded).
    reduced_jpeg: whether image files were decoded with JPEGs at a reduced scale (`data.images`);
    False for a data set stored before that rule, whose model must then see full decodes.
    """

    images: np.ndarray
    labels: np.ndarray | None
    classes: list[str]
    source: str
    resize_rule: str = "resize"
    reduced_jpeg: bool = True

    @property
    def has_labels(self) -> bool:
        """Whether ground-truth labels exist (the `folder` source may have none)."""
        return self.labels is not None


def fit_dataset(dataset: ImageDataset, size: int) -> ImageDataset:
    """`dataset` with its images fitted to size × size by its own rule (a no-op when they already are)."""
    return replace(dataset, images=fit_images(dataset.images, size, dataset.resize_rule))


def release_pages(array: np.ndarray) -> None:
    """Drop the resident pages of a memory-mapped array from this process (no-op in memory).

    They stay in the kernel's page cache, so reading them again is cheap; only this process's
    resident memory shrinks.
    """
    backing = getattr(array, "_mmap", None)
    if backing is not None and hasattr(mmap, "MADV_DONTNEED"):
        backing.madvise(mmap.MADV_DONTNEED)


def rows_per_block(array: np.ndarray) -> int:
    """How many rows of `array` make about BLOCK_BYTES (at least one)."""
    row_bytes = int(np.prod(array.shape[1:], dtype=np.int64)) * array.itemsize
    return max(1, BLOCK_BYTES // max(row_bytes, 1))


def dataset_checksum(images: np.ndarray, labels: np.ndarray | None) -> str:
    """sha256 over the image bytes, their shape and the labels.

    Read in blocks of rows, releasing a memory-mapped array's pages after each: checking a data
    set larger than memory does not load it.
    """
    digest = hashlib.sha256(str(images.shape).encode())
    block = rows_per_block(images)
    for start in range(0, len(images), block):
        digest.update(np.ascontiguousarray(images[start : start + block]).data)  # no copy
        release_pages(images)
    if labels is not None:
        digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def save_rows(path: Path, array: np.ndarray) -> None:
    """`np.save` in blocks of rows, releasing a memory-mapped array's pages after each, so writing
    a disk-backed data set does not load it (np.save would map every page in at once)."""
    with path.open("wb") as out:
        np.lib.format.write_array_header_1_0(out, np.lib.format.header_data_from_array_1_0(array))
        block = rows_per_block(array)
        for start in range(0, len(array), block):
            out.write(np.ascontiguousarray(array[start : start + block]).data)
            release_pages(array)


def write_dataset(dataset: ImageDataset, out_dir: Path, skipped: Sequence[SkippedFile] = ()) -> dict:
    """Write `dataset` to `out_dir` atomically; returns the manifest. The files left out of an image
    tree (`skipped`), if any, are listed whole in SKIPPED_FILE (path, tab, reason per line)."""
    manifest = {
        "format_version": FORMAT_VERSION,
        "source": dataset.source,
        "count": int(len(dataset.images)),
        "image_shape": list(dataset.images.shape[1:]),
        "classes": list(dataset.classes),
        "has_labels": dataset.has_labels,
        "resize_rule": dataset.resize_rule,  # applied: the images are stored at the model input size
        "preprocessing": preprocessing_record(dataset.reduced_jpeg),  # how image files were decoded
        "checksum": dataset_checksum(dataset.images, dataset.labels),
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out_dir.parent, f".{out_dir.name}-")
    try:
        save_rows(tmp / "images.npy", dataset.images)
        if dataset.labels is not None:
            np.save(tmp / "labels.npy", dataset.labels)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if skipped:
            lines = (f"{shown_path(item.path)}\t{item.reason}\n" for item in skipped)
            (tmp / SKIPPED_FILE).write_text("".join(lines), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        publish_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


# What later stages read from a manifest, and the type each must have.
MANIFEST_FIELDS = {
    "source": str,
    "count": int,
    "image_shape": list,
    "classes": list,
    "has_labels": bool,
    "resize_rule": str,
    "checksum": str,
}
REFETCH = "restore it with `dvc checkout data/dataset`, or fetch again (dvc repro -f fetch)"


def read_manifest(data_dir: Path) -> dict:
    """The manifest of a stored dataset; a clear `DatasetError` when it is absent or damaged."""
    path = data_dir / MANIFEST
    if not path.is_file():
        raise DatasetError(f"no dataset at {data_dir} (missing {MANIFEST}): run the fetch stage first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON
        raise DatasetError(f"cannot read {path} ({err}): {REFETCH}") from err
    if not isinstance(manifest, dict):
        raise DatasetError(f"{path} is not a data set manifest: {REFETCH}")
    for key, kind in MANIFEST_FIELDS.items():
        if not isinstance(manifest.get(key), kind):
            raise DatasetError(f"{path} lacks a valid {key!r}: {REFETCH}")
    return manifest


def read_dataset(data_dir: Path, verify: bool = True, mapped: bool = False) -> ImageDataset:
    """Load a dataset written by `write_dataset`, checking its checksum when `verify`.

    `mapped`: the images stay on disk, memory-mapped read-only (wrap them in `ModelImages`).
    A damaged or missing array, or one that disagrees with the manifest, is a `DatasetError`.
    """
    manifest = read_manifest(data_dir)
    images = load_array(data_dir / "images.npy", mapped)
    labels = load_array(data_dir / "labels.npy", False) if manifest["has_labels"] else None
    if verify and dataset_checksum(images, labels) != manifest["checksum"]:
        raise DatasetError(f"{data_dir} does not match its manifest checksum: fetch it again")
    check_matches_manifest(images, labels, manifest, data_dir)
    reduced = reduces_jpeg(manifest.get("preprocessing"))
    return ImageDataset(
        images, labels, manifest["classes"], manifest["source"], manifest["resize_rule"], reduced
    )


def load_array(path: Path, mapped: bool) -> np.ndarray:
    """One stored array (memory-mapped read-only when `mapped`); a damaged file is a DatasetError."""
    try:
        return np.load(path, mmap_mode="r" if mapped else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:  # missing, cut short, not .npy, object arrays
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0]
        raise DatasetError(f"cannot read {path} ({reason}): {REFETCH}") from err


def check_matches_manifest(
    images: np.ndarray, labels: np.ndarray | None, manifest: dict, data_dir: Path
) -> None:
    """DatasetError where the arrays and the manifest disagree (the checksum covers neither the
    class names nor the counts, and is skipped when not verifying)."""
    count, classes = manifest["count"], manifest["classes"]
    wrong = None
    if images.ndim != 4 or len(images) != count or list(images.shape[1:]) != manifest["image_shape"]:
        said = f"{count} of {manifest['image_shape']}"
        wrong = f"images of shape {tuple(images.shape)}, where the manifest says {said}"
    elif labels is not None and (labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer)):
        wrong = f"labels of shape {labels.shape} and type {labels.dtype}, for {count} images"
    elif labels is not None and count and not 0 <= labels.min() <= labels.max() < len(classes):
        wrong = f"labels up to {labels.max()}, where the manifest names {len(classes)} classes"
    if wrong:
        raise DatasetError(f"{data_dir} holds {wrong}: {REFETCH}")

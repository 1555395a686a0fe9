"""Cluster image files through an exported ONNX model with ONNX Runtime, streaming.

Everything needed comes from the `.onnx` file: the preprocessing contract in its metadata and
the graph. Files are decoded by the same function as the `folder` data source and fitted by the
rule the model was trained with; batches are formed as files stream by, so memory stays flat.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gatcluster.data.images import FIT_RULE, IMAGE_SUFFIXES, ImageDecodeError, fit_image, load_image
from gatcluster.data.prepare import fit_size
from gatcluster.data.walk import SkippedFile

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before onnxruntime is imported anywhere
REQUIRED_KEYS = ("gatcluster.input_size", "gatcluster.channels", "gatcluster.num_clusters")


class ModelFileError(RuntimeError):
    """The model file is missing, unreadable, or not a gatcluster ONNX model."""


class DeviceError(RuntimeError):
    """The requested device cannot be used here."""


@dataclass(frozen=True)
class Contract:
    """The preprocessing contract and provenance stored in a gatcluster ONNX model."""

    input_size: int
    channels: int
    resize_rule: str
    num_clusters: int
    cluster_names: list[str]
    metadata: dict[str, str]


@dataclass(frozen=True)
class Prediction:
    """The cluster of one image, its confidence and every cluster's probability."""

    path: Path
    cluster: int
    name: str
    confidence: float
    probs: list[float]
    att_map: np.ndarray


def read_contract(path: Path) -> Contract:
    """The contract of the model at `path`; ModelFileError when it is absent or not ours."""
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError, OSError, ValueError for bad files
        raise ModelFileError(f"{path} is not a readable ONNX model ({type(err).__name__})") from err
    meta = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelFileError(f"{path} is not a gatcluster model (metadata lacks {', '.join(missing)})")
    k = int(meta["gatcluster.num_clusters"])
    names = json.loads(meta.get("gatcluster.cluster_names", "null")) or [f"cluster {i}" for i in range(k)]
    size, channels = int(meta["gatcluster.input_size"]), int(meta["gatcluster.channels"])
    return Contract(size, channels, meta.get("gatcluster.resize_rule", FIT_RULE), k, names, meta)


def cuda_usable() -> bool:
    """Whether a CUDA GPU really works here (ONNX Runtime lists CUDA even without one)."""
    return torch.cuda.is_available()


def providers_for(device: str) -> list[str]:
    """ONNX Runtime providers for `device` (auto|cpu|cuda); DeviceError for cuda without a GPU."""
    if device == "cuda" and not cuda_usable():
        raise DeviceError("--device cuda but no usable CUDA GPU here: use --device auto or cpu")
    if device == "cpu" or (device == "auto" and not cuda_usable()):
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


ORT_VERBOSE, ORT_ERRORS_ONLY = 1, 3  # ONNX Runtime log severities: info, error


def open_session(path: Path, device: str, threads: int | None = None, verbose: bool = False):
    """An ONNX Runtime session and the provider that actually runs it (errors-only logs unless `verbose`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = ORT_VERBOSE if verbose else ORT_ERRORS_ONLY
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=providers_for(device))
    except DeviceError:
        raise
    except Exception as err:  # ORT raises its own Fail / InvalidGraph types
        raise ModelFileError(f"ONNX Runtime cannot load {path}: {str(err).splitlines()[0]}") from err
    return session, session.get_providers()[0]


def fit_to_contract(array: np.ndarray, contract: Contract) -> np.ndarray:
    """uint8 (H, W, C) -> float32 (C, S, S) in [0, 1], fitted by the model's training rule."""
    size = contract.input_size
    if contract.resize_rule == FIT_RULE:
        fitted = torch.from_numpy(fit_image(array, size)).permute(2, 0, 1)
    else:  # the rule of the bundled / download sources, applied by the training code itself
        tensor = torch.from_numpy(np.array(array, copy=True)).permute(2, 0, 1)[None]
        fitted = fit_size(tensor, size, contract.resize_rule)[0]
    return fitted.float().div(255.0).numpy()


def looks_like_image(path: Path) -> bool:
    """An image suffix, or (for other names) image content; non-images with other names are ignored."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    from gatcluster.data.images import is_image_file

    return is_image_file(path)


def decode(path: Path, contract: Contract) -> np.ndarray | SkippedFile:
    """The model input for one file, or why it was skipped."""
    try:
        return fit_to_contract(load_image(path, contract.channels), contract)
    except ImageDecodeError as err:
        return SkippedFile(path, str(err))
    except OSError as err:
        return SkippedFile(path, f"unreadable ({err.strerror or err})")


def batches(
    files: Iterable[Path | SkippedFile], contract: Contract, size: int
) -> Iterator[tuple[list[Path], np.ndarray | None, list[SkippedFile]]]:
    """(paths, float batch, skipped) groups of up to `size` decoded images, as files stream by."""
    paths, arrays, skipped = [], [], []
    for item in files:
        result = item if isinstance(item, SkippedFile) else decode(item, contract)
        if isinstance(result, SkippedFile):
            skipped.append(result)
            continue
        paths.append(item)
        arrays.append(result)
        if len(arrays) == size:
            yield paths, np.stack(arrays), skipped
            paths, arrays, skipped = [], [], []
    if arrays or skipped:
        yield paths, (np.stack(arrays) if arrays else None), skipped


def predict_batch(session, contract: Contract, paths: list[Path], batch: np.ndarray) -> list[Prediction]:
    """Run one batch; a Prediction per image."""
    probs, att_maps = session.run(["probs", "att_map"], {"image": batch})[:2]
    clusters = probs.argmax(axis=1)
    return [
        Prediction(p, int(c), contract.cluster_names[c], float(row[c]), row.tolist(), att)
        for p, c, row, att in zip(paths, clusters, probs, att_maps, strict=True)
    ]

"""Cluster image files through an exported ONNX model with ONNX Runtime, streaming.

Everything needed comes from the `.onnx` file: the model contract in its metadata and the graph.
Each file is decoded once, by the same functions as the data sources (decode in colour, fit by the
model's rule), and becomes the model input by the training clean view; batches are formed as
files stream by, so memory stays flat. NumPy, Pillow and ONNX Runtime only: no torch.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from gatcluster.data.fit import decode_fitted
from gatcluster.data.images import IMAGE_SUFFIXES
from gatcluster.data.parallel import ordered_map
from gatcluster.data.pixels import clean_view_array
from gatcluster.data.walk import SkippedFile
from gatcluster.path_text import shown_path
from gatcluster.serving.contract import (
    INPUT_NAME,
    PREDICT_OUTPUTS,
    ModelContract,
    ModelFileError,
    model_source,
)
from gatcluster.telemetry import telemetry_off

telemetry_off()  # before onnxruntime is imported anywhere


class DeviceError(RuntimeError):
    """The requested device cannot be used here."""


@dataclass(frozen=True)
class Prediction:
    """The cluster of one image, its confidence, every cluster's probability, and what the model saw."""

    path: Path
    cluster: int
    name: str
    confidence: float
    probs: list[float]
    att_map: np.ndarray
    image: np.ndarray  # the fitted uint8 (S, S, 3) image, for attention overlays without decoding again


@cache
def cuda_usable() -> bool:
    """Whether a CUDA GPU really works here (ONNX Runtime lists CUDA even without one).

    Asks the NVIDIA driver itself, as torch.cuda.is_available() does, without importing torch.
    """
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    return driver.cuInit(0) == 0 and driver.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0


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
    model = model_source(path)
    try:
        session = ort.InferenceSession(model, options, providers=providers_for(device))
    except DeviceError:
        raise
    except Exception as err:  # ORT raises its own Fail / InvalidGraph types
        said = str(err).splitlines()[0]
        raise ModelFileError(f"ONNX Runtime cannot load {shown_path(path)}: {said}") from err
    return session, session.get_providers()[0]


def model_input(fitted: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Fitted uint8 (N, S, S, 3) -> the float32 (N, C, S, S) model input: the training clean view."""
    return clean_view_array(fitted, contract.grayscale)


def looks_like_image(path: Path) -> bool:
    """An image suffix, or (for other names) image content; non-images with other names are ignored."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    from gatcluster.data.images import is_image_file

    return is_image_file(path)


def decode(path: Path, contract: ModelContract) -> np.ndarray | SkippedFile:
    """One file decoded once and fitted by the model's rule, uint8 (S, S, 3); or why it was skipped."""
    return decode_fitted(path, contract.input_size, contract.resize_rule, contract.reduced_jpeg)


def batches(
    files: Iterable[Path | SkippedFile], contract: ModelContract, size: int, workers: int = 1
) -> Iterator[tuple[list[Path], np.ndarray | None, list[SkippedFile]]]:
    """(paths, fitted uint8 batch, skipped) groups of up to `size` decoded images, as files stream
    by; decoded on `workers` threads, a few files ahead of the batch being used, in their order."""
    paths, arrays, skipped = [], [], []

    def decoded(item: Path | SkippedFile) -> tuple[Path | SkippedFile, np.ndarray | SkippedFile]:
        return item, item if isinstance(item, SkippedFile) else decode(item, contract)

    for item, result in ordered_map(decoded, files, workers):
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


def predict_batch(
    session, contract: ModelContract, paths: list[Path], fitted: np.ndarray
) -> list[Prediction]:
    """Run one batch of fitted images; a Prediction per image."""
    probs, att_maps = session.run(list(PREDICT_OUTPUTS), {INPUT_NAME: model_input(fitted, contract)})
    clusters = probs.argmax(axis=1)
    return [
        Prediction(p, int(c), contract.cluster_names[c], float(row[c]), row.tolist(), att, image)
        for p, c, row, att, image in zip(paths, clusters, probs, att_maps, fitted, strict=True)
    ]

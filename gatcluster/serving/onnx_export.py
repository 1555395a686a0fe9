"""ONNX export of a trained GATCluster: one self-contained file, checked against PyTorch.

The graph takes float images in [0, 1] (N, C, S, S) with a dynamic batch axis and returns the
global head's cluster probabilities, the attention maps and the global features. The
preprocessing contract (size, channels, scaling, resize rule, K, cluster names, provenance)
travels in the model's metadata, so a predictor needs nothing but the `.onnx` file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from gatcluster.atomic import atomic_path
from gatcluster.model import GATCluster
from gatcluster.serving.contract import INPUT_NAME, OUTPUT_NAMES

PROB_ATOL = 1e-4  # absolute tolerance on probabilities
MAP_RTOL = 1e-3  # relative tolerance on attention maps and features
# Loggers of the exporter's graph passes: INFO lines such as "Removed 135 unused nodes".
EXPORTER_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx")


class ExportMismatch(RuntimeError):
    """The ONNX file is not what was asked for: ONNX Runtime's outputs differ from PyTorch's beyond
    the tolerances, or the exporter wrote another opset."""


class OnnxOutputs(nn.Module):
    """The exported interface: images -> (probs, att_map, features)."""

    def __init__(self, model: GATCluster) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(image)
        return out.probs, out.att_map, out.features


def export_onnx(
    model: GATCluster, path: Path, opset: int, metadata: dict[str, str], verbose: bool = False
) -> None:
    """Write `model` as one ONNX file (weights inside) with `metadata`, checked by onnx.checker.

    The exporter's progress lines ("[torch.onnx] Obtain model graph ...") and its graph passes' INFO
    log lines appear only when `verbose`.
    """
    wrapper = OnnxOutputs(model.eval()).eval()
    example = torch.rand(2, model.in_channels, model.input_size, model.input_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exporter_logs(verbose):
        program = torch.onnx.export(  # kept in memory: nothing half-written on disk if it fails
            wrapper,
            (example,),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            opset_version=opset,
            dynamo=True,
            verbose=verbose,
        )
        graph = program.model_proto
        written = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), None)
        if written != opset:  # the exporter falls back to its own opset where it cannot convert
            raise ExportMismatch(
                f"the exporter wrote ONNX opset {written}, not export.opset {opset}:"
                f" set export.opset: {written}"
            )
        onnx.helper.set_model_props(graph, {k: str(v) for k, v in metadata.items()})
        onnx.checker.check_model(graph, full_check=True)
    with atomic_path(path) as final:
        onnx.save(graph, str(final))


@contextmanager
def exporter_logs(verbose: bool) -> Iterator[None]:
    """Hold the exporter's loggers at WARNING for the block unless `verbose`; their levels come back after."""
    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    if not verbose:
        for logger in loggers:
            logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def onnx_session(path: Path):
    """A CPU ONNX Runtime session on `path` (parity checks run on the CPU)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def check_parity(model: GATCluster, path: Path, batch: torch.Tensor) -> dict[str, float]:
    """Compare ONNX Runtime with PyTorch on float `batch`; the largest differences, or ExportMismatch."""
    with torch.no_grad():
        expected = [t.numpy() for t in OnnxOutputs(model.eval())(batch)]
    got = onnx_session(path).run(list(OUTPUT_NAMES), {INPUT_NAME: batch.numpy()})
    diffs = {}
    for name, want, have in zip(OUTPUT_NAMES, expected, got, strict=True):
        diffs[name] = float(np.abs(want - have).max())
        ok = (
            np.allclose(have, want, rtol=0, atol=PROB_ATOL)
            if name == "probs"
            else np.allclose(have, want, rtol=MAP_RTOL, atol=MAP_RTOL * float(np.abs(want).max()))
        )
        if not ok:
            raise ExportMismatch(
                f"ONNX {name} differs from PyTorch by up to {diffs[name]:.2e} at batch {len(batch)}"
            )
    return diffs


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata properties of an ONNX file."""
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}

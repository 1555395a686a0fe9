"""DVC stage `export`: the trained model as one ONNX file, checked against PyTorch, logged to MLflow.

Usage: python stages/export.py   (reads params.yaml: export)

The work is `gatcluster.pipeline.export_stage.run_export` (what it reads and writes is listed
there); this script reads params.yaml and MLFLOW_TRACKING_URI, DVC_EXP_NAME and GAT_VERBOSE=1
(the exporter's own output) from the environment.
"""

from __future__ import annotations

import os

from _common import LAYOUT, read_params, run_stage, verbose_requested

from gatcluster.pipeline.export_stage import run_export
from gatcluster.serving.onnx_export import ExportMismatch
from gatcluster.training.checkpoint import CheckpointError


def main() -> None:
    """Export the trained model and log it to its MLflow run."""
    uri, exp_name = os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("DVC_EXP_NAME", "")
    print(run_export(read_params(), LAYOUT, uri, exp_name, verbose_requested()))


if __name__ == "__main__":
    run_stage(main, failures=(CheckpointError, ExportMismatch))

"""DVC stage `export`: the trained model as one ONNX file, checked against PyTorch, logged to MLflow.

Usage: python stages/export.py   (reads params.yaml: export)

Reads models/model.pt, data/dataset/ (parity-check images), reports/run.json and reports/clusters.json
(the cluster names evaluate matched); writes models/gatcluster.onnx with the
preprocessing contract in its metadata, and logs it (with signature and input example), params.yaml
and dvc.lock to the model's MLflow run.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import onnx
from _common import (
    CLUSTERS_FILE,
    DATASET_DIR,
    PARAMS_FILE,
    REPORT_RUN_FILE,
    ROOT,
    StageError,
    read_params,
    relative,
    run_stage,
    verbose_requested,
)
from _tracking import Tracking, open_tracking, run_tags
from mlflow.models import infer_signature

from gatcluster.checkpoint import CheckpointError
from gatcluster.config import Params
from gatcluster.data.images import FIT_RULE, PREPROCESSING
from gatcluster.data.prepare import prepare_images
from gatcluster.data.sources import ROOT_SOURCES
from gatcluster.data.store import ImageDataset, read_dataset, read_manifest
from gatcluster.data.views import clean_view
from gatcluster.export import ExportMismatch, check_parity, export_onnx, onnx_session
from gatcluster.model import GATCluster
from gatcluster.model_file import load_model
from gatcluster.resume import params_digest
from gatcluster.tracking import active_run, git_state, reopen_run

MODEL_FILE = ROOT / "models" / "model.pt"
ONNX_FILE = ROOT / "models" / "gatcluster.onnx"
PARITY_BATCHES = (1, 7)
ORT_REQUIREMENT = "onnxruntime-gpu==1.31.1"


def read_cluster_names(num_clusters: int) -> list[str]:
    """The cluster names the evaluate stage matched (reports/clusters.json), one per cluster."""
    try:
        table = json.loads(CLUSTERS_FILE.read_text())
        names = [str(row["name"]) for row in table]
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise StageError(
            f"cannot read {relative(CLUSTERS_FILE)} ({err}): run `dvc repro evaluate` first"
        ) from err
    if len(names) != num_clusters:
        raise StageError(
            f"{relative(CLUSTERS_FILE)} names {len(names)} clusters but the model has {num_clusters}: "
            "run `dvc repro evaluate` first"
        )
    return names


def contract(model: GATCluster, trained: Params, dataset: ImageDataset, names: list[str]) -> dict[str, str]:
    """The preprocessing contract and provenance stored in the ONNX metadata."""
    commit, dirty = git_state(ROOT)
    return {
        "gatcluster.input_size": str(model.input_size),
        "gatcluster.channels": str(model.in_channels),
        "gatcluster.color": "grayscale" if trained.data.grayscale else "rgb",
        "gatcluster.normalization": "x / 255 (no mean/std)",
        # Files of tree sources were fitted by the file rule at fetch time; predict must do the same.
        "gatcluster.resize_rule": FIT_RULE if dataset.source in ROOT_SOURCES else dataset.resize_rule,
        "gatcluster.preprocessing": json.dumps(PREPROCESSING),
        "gatcluster.num_clusters": str(trained.model.num_clusters),
        "gatcluster.cluster_names": json.dumps(names),
        "gatcluster.source": dataset.source,
        "gatcluster.git_commit": commit + ("-dirty" if dirty else ""),
        "gatcluster.params_digest": params_digest(trained),
    }


def log_to_mlflow(tracking: Tracking, run_id: str, example: np.ndarray, session) -> None:
    """The ONNX model with signature and input example, params.yaml and dvc.lock, in the run."""
    outputs = dict(
        zip([o.name for o in session.get_outputs()], session.run(None, {"image": example}), strict=True)
    )
    mlflow.set_tracking_uri(tracking.uri)
    with mlflow.start_run(run_id=run_id):
        mlflow.onnx.log_model(
            onnx.load(str(ONNX_FILE)),
            name="model",
            signature=infer_signature(example, outputs),
            input_example=example,
            pip_requirements=[ORT_REQUIREMENT, "onnx"],
            onnx_execution_providers=["CPUExecutionProvider"],
        )
        for path in (PARAMS_FILE, ROOT / "dvc.lock"):
            if path.is_file():
                mlflow.log_artifact(str(path))


def main() -> None:
    """Export, check parity at batch 1 and 7 on real images, log to the model's run."""
    params = read_params()
    model, trained = load_model(MODEL_FILE)
    dataset = read_dataset(DATASET_DIR)
    data = trained.data
    images = prepare_images(dataset.images, data.image_size, dataset.resize_rule, data.grayscale)
    tracking = open_tracking(trained)
    tags = run_tags(read_manifest(DATASET_DIR)["checksum"], "cpu")
    run_id = reopen_run(tracking.client, REPORT_RUN_FILE, tracking.experiment_id, "export", tags)
    with active_run(tracking.client, run_id):
        names = read_cluster_names(trained.model.num_clusters)
        metadata = contract(model, trained, dataset, names)
        export_onnx(model, ONNX_FILE, params.export.opset, metadata, verbose=verbose_requested())
        for size in PARITY_BATCHES:
            check_parity(model, ONNX_FILE, clean_view(images[:size], data.grayscale))
        example = clean_view(images[:2], data.grayscale).numpy()
        log_to_mlflow(tracking, run_id, example, onnx_session(ONNX_FILE))
    print(f"exported {relative(ONNX_FILE)} (parity checked at batch {PARITY_BATCHES}; MLflow run {run_id})")


if __name__ == "__main__":
    run_stage(main, failures=(CheckpointError, ExportMismatch))

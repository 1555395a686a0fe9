"""The `export` stage: the trained model as one ONNX file, checked against PyTorch, logged to MLflow.

Reads models/model.pt, data/dataset/ (parity-check images), reports/run.json and
reports/clusters.json (the cluster names evaluate matched); writes models/gatcluster.onnx with the
model contract (`serving/contract.py`) in its metadata, and logs it (with signature and input
example), the export params, params.yaml and dvc.lock to the model's MLflow run, and adds it as a
version of the registered model `export.registered_model` (tags: run, data checksum, git commit,
params digest, ACC / NMI / ARI).
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import onnx
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo

from gatcluster.config.params import STAGE_PARAMS, Params, flatten_params
from gatcluster.data.store import ImageDataset, read_dataset, read_manifest
from gatcluster.data.views import clean_view
from gatcluster.model import GATCluster
from gatcluster.pipeline.errors import StageError
from gatcluster.pipeline.layout import ProjectLayout
from gatcluster.pipeline.model_inputs import trained_model_images
from gatcluster.pipeline.tracking import Tracking, code_version, open_tracking, run_tags
from gatcluster.serving.contract import INPUT_NAME, ModelContract
from gatcluster.serving.onnx_export import check_parity, export_onnx, onnx_session
from gatcluster.tracking.mlflow_runs import active_run, log_stage_params, reopen_run
from gatcluster.tracking.registry import register_version
from gatcluster.training.model_file import load_model
from gatcluster.training.resume import params_digest

PARITY_BATCHES = (1, 7)
ORT_REQUIREMENT = "onnxruntime-gpu==1.31.1"


def read_cluster_names(layout: ProjectLayout, num_clusters: int) -> list[str]:
    """The cluster names the evaluate stage matched (reports/clusters.json), one per cluster."""
    path = layout.relative(layout.clusters_file)
    try:
        table = json.loads(layout.clusters_file.read_text())
        names = [str(row["name"]) for row in table]
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise StageError(f"cannot read {path} ({err}): run `dvc repro evaluate` first") from err
    if len(names) != num_clusters:
        raise StageError(
            f"{path} names {len(names)} clusters but the model has {num_clusters}: "
            "run `dvc repro evaluate` first"
        )
    return names


def model_contract(
    model: GATCluster, trained: Params, dataset: ImageDataset, names: list[str], layout: ProjectLayout
) -> ModelContract:
    """The model contract (preprocessing, clusters, provenance) stored in the ONNX metadata."""
    commit, dirty = code_version(layout)
    return ModelContract(
        input_size=model.input_size,
        channels=model.in_channels,
        resize_rule=dataset.resize_rule,  # the rule fetch applied, as the manifest says
        reduced_jpeg=dataset.reduced_jpeg,  # decoded as fetch decoded the training images
        num_clusters=trained.model.num_clusters,
        cluster_names=tuple(names),
        source=dataset.source,
        git_commit=commit + ("-dirty" if dirty else ""),
        params_digest=params_digest(trained),
    )


def log_model(tracking: Tracking, run_id: str, example: np.ndarray, layout: ProjectLayout) -> ModelInfo:
    """The ONNX model with signature and input example, params.yaml and dvc.lock, in the run; what
    MLflow says of the logged model (its URI and id)."""
    session = onnx_session(layout.onnx_file)
    outputs = dict(
        zip([o.name for o in session.get_outputs()], session.run(None, {INPUT_NAME: example}), strict=True)
    )
    mlflow.set_tracking_uri(tracking.uri)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.onnx.log_model(
            onnx.load(str(layout.onnx_file)),
            name="model",
            signature=infer_signature(example, outputs),
            input_example=example,
            pip_requirements=[ORT_REQUIREMENT, "onnx"],
            onnx_execution_providers=["CPUExecutionProvider"],
        )
        for path in (layout.params_file, layout.dvc_lock):
            if path.is_file():
                mlflow.log_artifact(str(path))
    return info


def version_tags(tracking: Tracking, run_id: str, checksum: str, contract: ModelContract) -> dict[str, str]:
    """What a registered version records: its run, data, code, params and the evaluation metrics."""
    metrics = tracking.client.get_run(run_id).data.metrics
    tags = {
        "run_id": run_id,
        "data_source": contract.source,
        "data_checksum": checksum,
        "git_commit": contract.git_commit,
        "params_digest": contract.params_digest,
        "num_clusters": str(contract.num_clusters),
    }
    tags.update({key: f"{metrics[key]:.6g}" for key in ("acc", "nmi", "ari") if key in metrics})
    return tags


def run_export(
    params: Params, layout: ProjectLayout, tracking_uri: str | None, exp_name: str, verbose: bool
) -> str:
    """Export, check parity at batch 1 and 7 on real images, log to the model's run; the report."""
    model, trained = load_model(layout.model_file)
    dataset = read_dataset(layout.dataset_dir, mapped=True)
    data = trained.data
    images = trained_model_images(dataset, trained)
    tracking = open_tracking(trained, layout.root, tracking_uri)
    checksum = read_manifest(layout.dataset_dir)["checksum"]
    tags = run_tags(layout, checksum, "cpu", exp_name)
    run_id = reopen_run(tracking.client, layout.report_run_file, tracking.experiment_id, "export", tags)
    registered = ""
    with active_run(tracking.client, run_id):
        log_stage_params(tracking.client, run_id, flatten_params(params, STAGE_PARAMS["export"]))
        names = read_cluster_names(layout, trained.model.num_clusters)
        contract = model_contract(model, trained, dataset, names, layout)
        export_onnx(model, layout.onnx_file, params.export.opset, contract.to_metadata(), verbose=verbose)
        for size in PARITY_BATCHES:
            check_parity(model, layout.onnx_file, clean_view(images[:size], data.grayscale))
        logged = log_model(tracking, run_id, clean_view(images[:2], data.grayscale).numpy(), layout)
        name = params.export.registered_model
        if name is not None:
            vtags = version_tags(tracking, run_id, checksum, contract)
            version = register_version(
                tracking.client, name, logged.model_uri, logged.model_id, run_id, vtags
            )
            registered = (
                f"; registered as models:/{name}/{version} (`gat promote {version}` makes it @champion)"
            )
    onnx_file = layout.relative(layout.onnx_file)
    return f"exported {onnx_file} (parity checked at batch {PARITY_BATCHES}; MLflow run {run_id}){registered}"

"""DVC stage `train`: fit GATCluster on data/dataset/ and write the model and training reports.

Usage: python stages/train.py   (reads params.yaml: seed, data, model, train, augment)

Writes models/model.pt, models/run.json (its MLflow run), reports/train/history.csv and
reports/train/summary.json; logs params, per-iteration metrics and tags to MLflow. Checkpoints go
to checkpoints/train/last.pt, outside DVC's outputs (DVC deletes outputs before a stage runs), so
running again after an interruption resumes. GAT_THREADS=<n> sets the number of CPU threads.
"""

from __future__ import annotations

import csv
import io
import os

import torch
from _common import (
    DATASET_DIR,
    MODEL_RUN_FILE,
    PARAMS_FILE,
    ROOT,
    StageError,
    exit_with,
    interrupt_exit_code,
    read_params,
    relative,
    run_stage,
)
from _tracking import Tracking, open_tracking, run_tags

from gatcluster.atomic import write_json_atomic, write_text_atomic
from gatcluster.checkpoint import CheckpointError
from gatcluster.config import Params, flatten_params
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import DatasetError, ImageDataset, read_dataset, read_manifest
from gatcluster.model_file import save_model
from gatcluster.progress import LogFn, ProgressLogger, combine_loggers
from gatcluster.resume import params_digest
from gatcluster.tracking import (
    active_run,
    log_metrics,
    log_params,
    metric_logger,
    read_run_file,
    run_exists,
    start_run,
    write_run_file,
)
from gatcluster.train import (
    FitResult,
    TrainingDiverged,
    TrainingSetupError,
    fit,
    resolve_device,
)

CHECKPOINT = ROOT / "checkpoints" / "train" / "last.pt"
CHECKPOINT_RUN_FILE = ROOT / "checkpoints" / "train" / "run.json"  # the MLflow run a resume continues
MODEL_FILE = ROOT / "models" / "model.pt"
REPORT_DIR = ROOT / "reports" / "train"
SUMMARY_METRICS = ("acc", "nmi", "ari")


def set_threads() -> None:
    """Apply GAT_THREADS (number of torch CPU threads) when it is set."""
    value = os.environ.get("GAT_THREADS")
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise StageError(f"GAT_THREADS must be a positive integer, got {value!r}")
    torch.set_num_threads(int(value))


def load_dataset(params: Params) -> ImageDataset:
    """The fetched dataset, checked to be the configured source."""
    dataset = read_dataset(DATASET_DIR)
    if dataset.source != params.data.source:
        raise DatasetError(
            f"{relative(DATASET_DIR)} holds {dataset.source!r} but data.source is "
            f"{params.data.source!r}: run the fetch stage first (dvc repro)"
        )
    return dataset


def train(params: Params, dataset: ImageDataset, log_fn: LogFn) -> FitResult:
    """Fit on the dataset with a progress bar beside `log_fn`; resumes from the checkpoint."""
    data = params.data
    images = prepare_images(dataset.images, data.image_size, dataset.resize_rule, data.grayscale)
    with ProgressLogger(params.train.iterations, "train") as bar:
        result = fit(params, images, dataset.labels, combine_loggers(bar, log_fn), CHECKPOINT)
        bar(params.train.iterations, result.history[-1] if result.history else {})  # also when resumed
    return result


def interrupted_message() -> str:
    """What Ctrl-C leaves behind and how to go on."""
    kept = f"{relative(CHECKPOINT)} is kept" if CHECKPOINT.is_file() else "no checkpoint was written yet"
    return f"interrupted: {kept}; run the train stage again (dvc repro) to resume"


def training_run(tracking: Tracking, params: Params, tags: dict[str, str]) -> str:
    """The MLflow run of this model: the interrupted run when its checkpoint is resumed, else new."""
    info = read_run_file(CHECKPOINT_RUN_FILE)
    digest = params_digest(params)
    resumable = CHECKPOINT.is_file() and info is not None and info.get("params_digest") == digest
    if resumable and run_exists(tracking.client, info["run_id"]):
        return info["run_id"]
    run_id = start_run(
        tracking.client, tracking.experiment_id, os.environ.get("DVC_EXP_NAME") or "train", tags
    )
    write_run_file(CHECKPOINT_RUN_FILE, run_id, tracking.experiment_id, {"params_digest": digest})
    return run_id


def history_csv(history: list[dict[str, float]]) -> str:
    """One row per iteration: step, then every metric seen (in first-seen order); gaps left empty."""
    columns = list(dict.fromkeys(key for row in history for key in row))
    columns = ["step", *(c for c in columns if c != "step")]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def summary(result: FitResult, params: Params) -> dict[str, float]:
    """Run length, time and resume point, with the last monitoring scores when there were any."""
    out = {
        "iterations": params.train.iterations,
        "seconds": round(result.seconds, 2),
        "resumed_from": result.resumed_from,
    }
    for key in SUMMARY_METRICS:
        values = [row[key] for row in result.history if key in row]
        if values:
            out[key] = values[-1]
    if result.head_losses:  # several heads: which one was kept, and every head's selection loss
        out["selected_head"] = result.selected_head
        out.update({f"head{h}_selection_loss": loss for h, loss in enumerate(result.head_losses)})
    return out


def main() -> None:
    """Read params and data, train under an MLflow run, write the model and the reports."""
    params = read_params()
    set_threads()
    dataset = load_dataset(params)
    tracking = open_tracking(params)
    device = str(resolve_device(params.train.device))
    run_id = training_run(tracking, params, run_tags(read_manifest(DATASET_DIR)["checksum"], device))
    try:
        with active_run(tracking.client, run_id):
            log_params(tracking.client, run_id, flatten_params(params))
            tracking.client.log_artifact(run_id, str(PARAMS_FILE))
            result = train(params, dataset, metric_logger(tracking.client, run_id))
            write_outputs(result, params, tracking, run_id)
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: the run is KILLED, the checkpoint kept
        exit_with(interrupted_message(), interrupt_exit_code(err))


def write_outputs(result: FitResult, params: Params, tracking: Tracking, run_id: str) -> None:
    """The model, its run file, the training curves and the summary; the summary goes to MLflow too."""
    save_model(result.model, params, MODEL_FILE)
    write_run_file(MODEL_RUN_FILE, run_id, tracking.experiment_id)
    write_text_atomic(REPORT_DIR / "history.csv", history_csv(result.history))
    scores = summary(result, params)
    write_json_atomic(REPORT_DIR / "summary.json", scores)
    log_metrics(
        tracking.client, run_id, {f"train/{k}": v for k, v in scores.items()}, params.train.iterations
    )
    shown = "".join(f", {k} {scores[k]:.3f}" for k in SUMMARY_METRICS if k in scores)
    print(f"{what_was_trained(result, params)}{shown} -> {relative(MODEL_FILE)} (MLflow run {run_id})")


def what_was_trained(result: FitResult, params: Params) -> str:
    """An honest summary: fresh training, a resumed one, or a checkpoint that was already complete."""
    total, done = params.train.iterations, result.resumed_from
    if done >= total:
        return f"nothing left to train: the checkpoint held all {total} iterations"
    if done:
        return (
            f"resumed after iteration {done}: trained iterations {done + 1}-{total} in {result.seconds:.1f} s"
        )
    return f"trained {total} iterations in {result.seconds:.1f} s"


if __name__ == "__main__":
    run_stage(main, failures=(TrainingDiverged, TrainingSetupError, CheckpointError))

"""The `train` stage: fit GATCluster on the fetched data set under one MLflow run, write the model and curves.

Writes models/model.pt, models/run.json (its MLflow run), reports/train/history.csv and
reports/train/summary.json; logs the training params, per-iteration metrics and tags. Checkpoints
go to checkpoints/train/last.pt, outside DVC's outputs, so running again after an interruption
resumes in the same MLflow run.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from gatcluster.atomic import write_json_atomic, write_text_atomic
from gatcluster.config.params import STAGE_PARAMS, Params, flatten_params
from gatcluster.data.model_images import ModelImages
from gatcluster.data.store import DatasetError, ImageDataset, read_dataset, read_manifest
from gatcluster.dvc_copy import experiment_copy
from gatcluster.evaluation.metrics import cluster_scores
from gatcluster.pipeline.layout import ProjectLayout
from gatcluster.pipeline.progress import ProgressLogger, combine_loggers
from gatcluster.pipeline.tracking import Tracking, open_tracking, run_tags
from gatcluster.tracking.mlflow_runs import (
    active_run,
    log_metrics,
    log_stage_params,
    metric_logger,
    read_run_file,
    run_exists,
    set_tags,
    start_run,
    write_run_file,
)
from gatcluster.tracking.system_metrics import system_metrics
from gatcluster.training.checkpoint import load_checkpoint
from gatcluster.training.distributed import SINGLE_PROCESS, Ranks
from gatcluster.training.fit import FitResult, LogFn, fit, resolve_device
from gatcluster.training.model_file import save_model
from gatcluster.training.resume import params_digest, resumable

SUMMARY_METRICS = ("acc", "nmi", "ari")


def load_dataset(params: Params, layout: ProjectLayout) -> ImageDataset:
    """The fetched data set, checked to be the configured source."""
    dataset = read_dataset(layout.dataset_dir, mapped=True)
    if dataset.source != params.data.source:
        raise DatasetError(
            f"{layout.relative(layout.dataset_dir)} holds {dataset.source!r} but data.source is "
            f"{params.data.source!r}: run the fetch stage first (dvc repro)"
        )
    return dataset


def train(
    params: Params,
    dataset: ImageDataset,
    log_fn: LogFn,
    checkpoint: Path,
    checksum: str,
    ranks: Ranks = SINGLE_PROCESS,
) -> FitResult:
    """Fit on the data set (`checksum`: its manifest's) with a progress bar beside `log_fn`; resumes
    from `checkpoint` when it was written on this data set with these params and code."""
    data = params.data
    images = ModelImages(dataset.images, params.model.input_size, data.grayscale)
    with ProgressLogger(params.train.iterations, "train") as bar:
        logger = combine_loggers(bar, log_fn)
        result = fit(params, images, dataset.labels, logger, checkpoint, ranks, checksum)
        bar(params.train.iterations, result.history[-1] if result.history else {})  # also when resumed
    return result


def train_quietly(params: Params, layout: ProjectLayout, ranks: Ranks) -> str:
    """A rank other than 0: train its share, without labels, progress bar, files or tracking."""
    data = params.data
    dataset = load_dataset(params, layout)
    images = ModelImages(dataset.images, params.model.input_size, data.grayscale)
    checksum = read_manifest(layout.dataset_dir)["checksum"]
    fit(params, images, None, None, layout.checkpoint, ranks, checksum)
    return ""


def interrupted_message(layout: ProjectLayout) -> str:
    """What Ctrl-C leaves behind and how to go on."""
    if experiment_copy(layout.root) is not None:
        # `dvc exp run --temp/--queue` trains in a copy that DVC deletes, checkpoint and all.
        return (
            "interrupted: this experiment trained in DVC's temporary copy of the project, which DVC"
            " deletes with its checkpoint; run the experiment again to train it from the start"
        )
    checkpoint = layout.checkpoint
    kept = (
        f"{layout.relative(checkpoint)} is kept" if checkpoint.is_file() else "no checkpoint was written yet"
    )
    return f"interrupted: {kept}; run the train stage again (dvc repro) to resume"


def training_run(
    tracking: Tracking,
    params: Params,
    checksum: str,
    tags: dict[str, str],
    layout: ProjectLayout,
    run_name: str,
) -> str:
    """The MLflow run of this model: the interrupted run when its checkpoint will be resumed, else
    a new one. The checkpoint is judged as `fit` judges it (params, training code, data set
    `checksum`): a retrain after a code change, or over the checkpoint of an earlier run, never
    continues the earlier run's curves; nor does a run tracked in another experiment continue there."""
    info = read_run_file(layout.checkpoint_run_file)
    same = {"params_digest": params_digest(params), "data_checksum": checksum}
    # A changed mlflow.experiment resumes the checkpoint in a new run there, not in the old experiment.
    where = {**same, "experiment_id": tracking.experiment_id}
    matches = info is not None and all(info.get(key) == value for key, value in where.items())
    resumed = matches and checkpoint_resumes(layout.checkpoint, params, checksum)
    if resumed and run_exists(tracking.client, info["run_id"]):
        # This invocation finishes the model: its DVC experiment, commit, device and processes.
        set_tags(tracking.client, info["run_id"], tags)
        return info["run_id"]
    run_id = start_run(tracking.client, tracking.experiment_id, run_name, tags)
    write_run_file(layout.checkpoint_run_file, run_id, tracking.experiment_id, same)
    return run_id


def checkpoint_resumes(checkpoint: Path, params: Params, checksum: str) -> bool:
    """Whether `fit` will resume `checkpoint` for `params` on the data set `checksum`."""
    return checkpoint.is_file() and resumable(load_checkpoint(checkpoint), params, checksum)


def history_csv(history: list[dict[str, float]]) -> str:
    """One row per iteration: step, then every metric seen (in first-seen order); gaps left empty."""
    columns = list(dict.fromkeys(key for row in history for key in row))
    columns = ["step", *(c for c in columns if c != "step")]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def summary(result: FitResult, params: Params, labels: np.ndarray | None = None) -> dict[str, float]:
    """Run length, time and resume point, with the last monitoring scores when there were any.

    `seconds` is this run's (setup to the kept head); `iteration_seconds` sums every iteration's
    time in the history, the earlier runs' of a resumed training included: the model's training time
    (a run that resumed a finished checkpoint took seconds, its model did not).
    With several heads, monitoring scores the first head while training; the scores here are then
    those of the head that was kept (the model written), from its final predictions and `labels`.
    """
    out = {
        "iterations": params.train.iterations,
        "seconds": round(result.seconds, 2),
        "iteration_seconds": round(sum(row.get("seconds", 0.0) for row in result.history), 2),
        "resumed_from": result.resumed_from,
    }
    for key in SUMMARY_METRICS:
        values = [row[key] for row in result.history if key in row]
        if values:
            out[key] = values[-1]
    if result.head_losses:  # several heads: which one was kept, and every head's selection loss
        out["selected_head"] = result.selected_head
        out.update({f"head{h}_selection_loss": loss for h, loss in enumerate(result.head_losses)})
        if "acc" in out and labels is not None:
            kept = cluster_scores(result.head_predictions[result.selected_head], labels)
            out.update(acc=kept.acc, nmi=kept.nmi, ari=kept.ari)
    return out


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


def write_outputs(
    result: FitResult,
    params: Params,
    tracking: Tracking,
    run_id: str,
    layout: ProjectLayout,
    labels: np.ndarray | None,
) -> str:
    """The model, its run file, the curves and the summary (to MLflow too); the one-line report."""
    save_model(result.model, params, layout.model_file)
    write_run_file(layout.model_run_file, run_id, tracking.experiment_id)
    write_text_atomic(layout.train_reports_dir / "history.csv", history_csv(result.history))
    scores = summary(result, params, labels)
    write_json_atomic(layout.train_reports_dir / "summary.json", scores)
    log_metrics(
        tracking.client, run_id, {f"train/{k}": v for k, v in scores.items()}, params.train.iterations
    )
    shown = "".join(f", {k} {scores[k]:.3f}" for k in SUMMARY_METRICS if k in scores)
    model = layout.relative(layout.model_file)
    return f"{what_was_trained(result, params)}{shown} -> {model} (MLflow run {run_id})"


def run_train(
    params: Params,
    layout: ProjectLayout,
    tracking_uri: str | None,
    exp_name: str,
    ranks: Ranks = SINGLE_PROCESS,
) -> str:
    """The whole stage: data, MLflow run (resumed or new), training, outputs; the one-line report.

    `exp_name` is the DVC experiment's name ("" outside `dvc exp run`): the run's name and a tag.
    Under torchrun every rank calls this; rank 0 alone owns the MLflow run and writes files
    (the others return "").
    """
    if not ranks.is_main:
        return train_quietly(params, layout, ranks)
    dataset = load_dataset(params, layout)
    tracking = open_tracking(params, layout.root, tracking_uri)
    device = str(resolve_device(params.train.device))
    checksum = read_manifest(layout.dataset_dir)["checksum"]
    tags = run_tags(layout, checksum, device, exp_name)
    tags["processes"] = str(ranks.world_size)
    run_id = training_run(tracking, params, checksum, tags, layout, exp_name or "train")
    with active_run(tracking.client, run_id):
        log_stage_params(tracking.client, run_id, flatten_params(params, STAGE_PARAMS["train"]))
        tracking.client.log_artifact(run_id, str(layout.params_file))
        with system_metrics(run_id, tracking.uri, params.mlflow.system_metrics_every):
            log_fn = metric_logger(tracking.client, run_id)
            result = train(params, dataset, log_fn, layout.checkpoint, checksum, ranks)
        return write_outputs(result, params, tracking, run_id, layout, dataset.labels)

"""DVC stage `train`: fit GATCluster on data/dataset/ and write the model and training reports.

Usage: python stages/train.py   (reads params.yaml: seed, data, model, train, augment)

Writes models/model.pt, reports/train/history.csv and reports/train/summary.json. Checkpoints go
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
    EXIT_INTERRUPTED,
    ROOT,
    StageError,
    exit_with,
    read_params,
    relative,
    run_stage,
    write_json_atomic,
    write_text_atomic,
)

from gatcluster.checkpoint import CheckpointError
from gatcluster.config import Params
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import DatasetError, ImageDataset, read_dataset
from gatcluster.model_file import save_model
from gatcluster.progress import ProgressLogger
from gatcluster.train import FitResult, TrainingDiverged, TrainingSetupError, fit

CHECKPOINT = ROOT / "checkpoints" / "train" / "last.pt"
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


def train(params: Params, dataset: ImageDataset) -> FitResult:
    """Fit on the dataset with a progress bar; Ctrl-C keeps the last checkpoint."""
    data = params.data
    images = prepare_images(dataset.images, data.image_size, dataset.resize_rule, data.grayscale)
    try:
        with ProgressLogger(params.train.iterations, "train") as bar:
            result = fit(params, images, dataset.labels, bar, CHECKPOINT)
            bar(params.train.iterations, result.history[-1] if result.history else {})  # also when resumed
            return result
    except KeyboardInterrupt:
        kept = f"{relative(CHECKPOINT)} is kept" if CHECKPOINT.is_file() else "no checkpoint was written yet"
        exit_with(f"interrupted: {kept}; run the train stage again to resume", EXIT_INTERRUPTED)


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
    return out


def main() -> None:
    """Read params and data, train, write the model and the reports."""
    params = read_params()
    set_threads()
    result = train(params, load_dataset(params))
    save_model(result.model, params, MODEL_FILE)
    write_text_atomic(REPORT_DIR / "history.csv", history_csv(result.history))
    scores = summary(result, params)
    write_json_atomic(REPORT_DIR / "summary.json", scores)
    shown = "".join(f", {k} {scores[k]:.3f}" for k in SUMMARY_METRICS if k in scores)
    done = f"trained {params.train.iterations} iterations in {result.seconds:.1f} s{shown}"
    print(f"{done} -> {relative(MODEL_FILE)}")


if __name__ == "__main__":
    run_stage(main, failures=(TrainingDiverged, TrainingSetupError, CheckpointError))

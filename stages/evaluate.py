"""DVC stage `evaluate`: score the trained model on its data set and draw its attention maps.

Usage: python stages/evaluate.py   (reads params.yaml: seed, evaluate)

Reads models/model.pt, models/run.json and data/dataset/; writes reports/metrics.json (cluster
sizes, and ACC / NMI / ARI when the data has labels), reports/clusters.json (name and size of each
cluster: its matched class when the data has labels), reports/confusion.csv (matched clusters vs
classes, for `dvc plots`), reports/attention.png (attention maps over sample images) and
reports/run.json, and adds them to the model's MLflow run (reopened from models/run.json).
"""

from __future__ import annotations

import csv
import io

import torch
from _common import (
    CLUSTERS_FILE,
    DATASET_DIR,
    MODEL_RUN_FILE,
    REPORT_RUN_FILE,
    ROOT,
    read_params,
    relative,
    run_stage,
)
from _tracking import open_tracking, run_tags

from gatcluster.atomic import atomic_path, write_json_atomic, write_text_atomic
from gatcluster.checkpoint import CheckpointError
from gatcluster.config import Params
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import ImageDataset, read_dataset, read_manifest
from gatcluster.evaluation import cluster_table, confusion_rows, metrics_report, named_clusters
from gatcluster.inference import chunked_outputs
from gatcluster.model import GATCluster
from gatcluster.model_file import load_model
from gatcluster.pictures import attention_grid
from gatcluster.tracking import active_run, log_metrics, reopen_run, write_run_file

MODEL_FILE = ROOT / "models" / "model.pt"
REPORTS = ROOT / "reports"
CHUNK = 500


def confusion_csv(rows: list[dict]) -> str:
    """CSV text with columns actual, predicted (header only when there are no labels)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["actual", "predicted"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def scores_text(report: dict) -> str:
    """ACC / NMI / ARI of a metrics report, or why they are absent."""
    if "acc" not in report:
        return report["label_metrics"]
    return f"ACC {report['acc']:.3f}  NMI {report['nmi']:.3f}  ARI {report['ari']:.3f}"


def sample_indices(n: int, count: int, seed: int) -> torch.Tensor:
    """`count` image indices drawn without replacement, fixed by `seed`."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: min(count, n)]


def main() -> None:
    """Predict every image; write and track the metrics, the confusion rows and the attention picture."""
    params = read_params()
    model, trained = load_model(MODEL_FILE)
    dataset = read_dataset(DATASET_DIR)
    tracking = open_tracking(trained)
    tags = run_tags(read_manifest(DATASET_DIR)["checksum"], "cpu")
    run_id = reopen_run(tracking.client, MODEL_RUN_FILE, tracking.experiment_id, "evaluate", tags)
    write_run_file(REPORT_RUN_FILE, run_id, tracking.experiment_id)
    with active_run(tracking.client, run_id):
        report = write_reports(model, trained, dataset, params)
        numbers = {k: v for k, v in report.items() if isinstance(v, int | float)}
        log_metrics(tracking.client, run_id, numbers, trained.train.iterations)
        for name in ("metrics.json", "clusters.json", "confusion.csv", "attention.png"):
            tracking.client.log_artifact(run_id, str(REPORTS / name), "reports")
    used = f"{report['non_empty_clusters']}/{report['num_clusters']} clusters"
    print(f"evaluated {report['num_images']} images in {used}: {scores_text(report)} (MLflow run {run_id})")


def write_reports(model: GATCluster, trained: Params, dataset: ImageDataset, params: Params) -> dict:
    """Predict every image and write metrics.json, confusion.csv and attention.png; the report."""
    data, k = trained.data, trained.model.num_clusters
    images = prepare_images(dataset.images, data.image_size, dataset.resize_rule, data.grayscale)
    out = chunked_outputs(model, images, CHUNK, data.grayscale, torch.device("cpu"))
    pred = out.probs.argmax(1).numpy()
    report = metrics_report(pred, dataset.labels, k)
    write_json_atomic(REPORTS / "metrics.json", report)
    names = named_clusters(pred, dataset.labels, k, dataset.classes)
    write_json_atomic(CLUSTERS_FILE, cluster_table(pred, names))
    rows = [] if dataset.labels is None else confusion_rows(pred, dataset.labels, names, dataset.classes)
    write_text_atomic(REPORTS / "confusion.csv", confusion_csv(rows))
    write_attention(images, out.att_map, params.evaluate.attention_samples, params.seed)
    return report


def write_attention(images: torch.Tensor, att_maps: torch.Tensor, count: int, seed: int) -> None:
    """reports/attention.png: attention overlays of `count` seeded sample images."""
    path = REPORTS / "attention.png"
    idx = sample_indices(len(images), count, seed)
    with atomic_path(path) as tmp:
        attention_grid(images[idx], att_maps[idx]).save(tmp, format="PNG")
    print(f"attention maps of {len(idx)} images -> {relative(path)}")


if __name__ == "__main__":
    run_stage(main, failures=(CheckpointError,))

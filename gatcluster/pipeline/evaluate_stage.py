"""The `evaluate` stage: score the trained model on its data set and draw its attention maps.

Reads models/model.pt, models/run.json and data/dataset/; writes reports/metrics.json (counts, the
smallest and largest cluster, and ACC / NMI / ARI when the data has labels), reports/clusters.json
(name and size of each cluster: its matched class when the data has labels), reports/confusion.csv
(matched clusters vs classes, for `dvc plots`), reports/attention.png (attention maps over sample
images), the cluster gallery (reports/gallery.html and one PNG per cluster in reports/gallery/: each
cluster's most confident members and a random sample, with attention overlays, size, matched class
and purity) and reports/run.json, and adds them, with the evaluate params, to the model's MLflow
run.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import torch

from gatcluster.atomic import atomic_path, write_json_atomic, write_text_atomic
from gatcluster.config.params import STAGE_PARAMS, Params, flatten_params
from gatcluster.data.model_images import ModelImages
from gatcluster.data.store import ImageDataset, read_dataset, read_manifest
from gatcluster.evaluation.gallery import GalleryCollector, cluster_cards, save_gallery
from gatcluster.evaluation.pictures import attention_grid
from gatcluster.evaluation.report import (
    cluster_table,
    confusion_rows,
    matched_purity,
    metrics_report,
    named_clusters,
)
from gatcluster.model import GATCluster
from gatcluster.pipeline.layout import ProjectLayout
from gatcluster.pipeline.model_inputs import trained_model_images
from gatcluster.pipeline.tracking import open_tracking, run_tags
from gatcluster.tracking.mlflow_runs import (
    active_run,
    log_metrics,
    log_stage_params,
    reopen_run,
    write_run_file,
)
from gatcluster.training.model_file import load_model
from gatcluster.training.passes import chunked_outputs, chunked_predictions

CHUNK = 500
REPORT_FILES = ("metrics.json", "clusters.json", "confusion.csv", "attention.png", "gallery.html")


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


def member_captions(start: int, count: int, dataset: ImageDataset) -> list[str]:
    """`image <index>`, with its class where the data set has labels (the gallery's hover text)."""
    captions = []
    for i in range(start, start + count):
        label = "" if dataset.labels is None else f", class {dataset.classes[int(dataset.labels[i])]}"
        captions.append(f"image {i}{label}")
    return captions


def predict_and_collect(
    model: GATCluster,
    images: ModelImages,
    dataset: ImageDataset,
    grayscale: bool,
    collector: GalleryCollector,
) -> np.ndarray:
    """Cluster id of every image in one streamed pass, offering each to the gallery on the way."""
    parts = []
    for batch, out in chunked_predictions(model, images, CHUNK, grayscale, torch.device("cpu")):
        confidence, cluster = out.probs.max(dim=1)
        start = sum(len(p) for p in parts)
        captions = member_captions(start, len(batch), dataset)
        collector.add_batch(cluster.numpy(), confidence.numpy(), batch.numpy(), out.att_map.numpy(), captions)
        parts.append(cluster.numpy())
    return np.concatenate(parts)


def write_gallery(
    collector: GalleryCollector,
    pred: np.ndarray,
    names: list[str],
    dataset: ImageDataset,
    layout: ProjectLayout,
) -> None:
    """reports/gallery.html and reports/gallery/cluster-<k>.png."""
    k = len(names)
    matched, purity = matched_purity(pred, dataset.labels, k, dataset.classes)
    cards = cluster_cards(collector, names, matched, purity)
    note = (
        f"{len(pred)} images of data set {dataset.source} in {k} clusters. Per cluster: its "
        f"{collector.members} most confident members, then {collector.members} drawn at random; "
        "attention maps in red. Purity: the share of a cluster's members in its matched class."
    )
    if dataset.labels is None:
        note += " The data set has no labels: no matched classes or purity."
    save_gallery(cards, layout.gallery_dir, layout.gallery_file, f"Clusters of {dataset.source}", note)


def sample_indices(n: int, count: int, seed: int) -> torch.Tensor:
    """`count` image indices drawn without replacement, fixed by `seed`."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: min(count, n)]


def write_reports(
    model: GATCluster, trained: Params, dataset: ImageDataset, params: Params, layout: ProjectLayout
) -> dict:
    """Predict every image and write the four report files; the metrics report."""
    data, k, reports = trained.data, trained.model.num_clusters, layout.reports_dir
    images = trained_model_images(dataset, trained)
    collector = GalleryCollector(k, params.evaluate.gallery_members, params.seed)
    pred = predict_and_collect(model, images, dataset, data.grayscale, collector)
    report = metrics_report(pred, dataset.labels, k)
    write_json_atomic(reports / "metrics.json", report)
    names = named_clusters(pred, dataset.labels, k, dataset.classes)
    write_json_atomic(layout.clusters_file, cluster_table(pred, names))
    rows = [] if dataset.labels is None else confusion_rows(pred, dataset.labels, names, dataset.classes)
    write_text_atomic(reports / "confusion.csv", confusion_csv(rows))
    write_gallery(collector, pred, names, dataset, layout)
    idx = sample_indices(len(images), params.evaluate.attention_samples, params.seed)
    sample = images[idx]
    att_maps = chunked_outputs(model, sample, CHUNK, data.grayscale, torch.device("cpu")).att_map
    with atomic_path(reports / "attention.png") as tmp:
        attention_grid(sample.numpy(), att_maps.numpy()).save(tmp, format="PNG")
    return report


def run_evaluate(params: Params, layout: ProjectLayout, tracking_uri: str | None, exp_name: str) -> str:
    """The whole stage, in the model's MLflow run; the one-line report."""
    model, trained = load_model(layout.model_file)
    dataset = read_dataset(layout.dataset_dir, mapped=True)
    tracking = open_tracking(trained, layout.root, tracking_uri)
    tags = run_tags(layout, read_manifest(layout.dataset_dir)["checksum"], "cpu", exp_name)
    run_id = reopen_run(tracking.client, layout.model_run_file, tracking.experiment_id, "evaluate", tags)
    write_run_file(layout.report_run_file, run_id, tracking.experiment_id)
    with active_run(tracking.client, run_id):
        log_stage_params(tracking.client, run_id, flatten_params(params, STAGE_PARAMS["evaluate"]))
        report = write_reports(model, trained, dataset, params, layout)
        numbers = {k: v for k, v in report.items() if isinstance(v, int | float)}
        log_metrics(tracking.client, run_id, numbers, trained.train.iterations)
        for name in REPORT_FILES:
            tracking.client.log_artifact(run_id, str(layout.reports_dir / name), "reports")
        tracking.client.log_artifacts(run_id, str(layout.gallery_dir), "reports/gallery")
    used = f"{report['non_empty_clusters']}/{report['num_clusters']} clusters"
    attention = f"attention maps of {min(len(dataset.images), params.evaluate.attention_samples)} images"
    gallery = layout.relative(layout.gallery_file)
    return (
        f"evaluated {report['num_images']} images in {used}: {scores_text(report)}; {attention}; "
        f"cluster gallery {gallery} "
        f"-> {layout.relative(layout.reports_dir)}/ (MLflow run {run_id})"
    )

"""Where does a trained network's cluster information sit? (the basis of train.relations: features)

Loads a trained-model file and the stored data set it was trained on, and clusters the clean
features of each backbone stage (after each max-pool, unit length), the label features and the
global head's probabilities with k-means (K clusters, 10 restarts); prints each one's ACC beside
the network's own argmax ACC. Labels only score the result.

`--batches N` asks the question of the neighbour targets instead (experimental.neighbours): in N
random batches of train.large_batch images, on the points the trainer uses (unit length, 32
principal components), the trainer's k-means ACC beside the share of each image's k nearest
neighbours that have its class, for the raw pixels and every stage.

    .venv/bin/python benchmarks/layer_probe.py                      # models/model.pt, data/dataset
    .venv/bin/python benchmarks/layer_probe.py --model m.pt --dataset d --threads 2
    .venv/bin/python benchmarks/layer_probe.py --batches 3          # k-means vs nearest neighbours
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from cli_args import positive_int, run_main  # benchmarks/ is this script's folder
from sklearn.cluster import KMeans

from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import read_dataset
from gatcluster.data.views import clean_view
from gatcluster.evaluation.metrics import cluster_scores
from gatcluster.training.kmeans import kmeans
from gatcluster.training.losses import nearest_neighbours, relation_points
from gatcluster.training.model_file import load_model

ROOT = Path(__file__).resolve().parents[1]


def stage_features(model, images: torch.Tensor, grayscale: bool) -> dict[str, torch.Tensor]:
    """Clean features after each max-pool, the label features f and the probabilities p."""
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for start in range(0, len(images), 500):
            h = clean_view(images[start : start + 500], grayscale)
            pools = []
            for layer in model.backbone:
                h = layer(h)
                if isinstance(layer, torch.nn.MaxPool2d):
                    pools.append(h.flatten(1))
            out = model.forward_head(h)
            named = {f"after pool {i + 1}": p for i, p in enumerate(pools)}
            named.update({"label features f": out.features, "probabilities p": out.probs})
            for key, value in named.items():
                parts.setdefault(key, []).append(value)
    return {key: torch.cat(value) for key, value in parts.items()}


NEIGHBOURS = (1, 5, 10, 20)


def neighbour_row(name: str, features: torch.Tensor, labels: np.ndarray, k: int) -> str:
    """k-means ACC and nearest-neighbour class agreement of one batch's features, as the trainer sees them."""
    points = relation_points(features.flatten(1).float(), seed=0)
    found = kmeans(points, k, 10, 0).numpy()
    ranked = nearest_neighbours(points, max(NEIGHBOURS)).numpy()  # the trainer's ranking
    cells = [f"{name:<20} k-means ACC {cluster_scores(found, labels).acc:.3f}"]
    for n in NEIGHBOURS:
        nearest = ranked[:, :n]
        cells.append(f"{n} nn {np.mean(labels[nearest] == labels[:, None]):.3f}")
    return "  ".join(cells)


def neighbour_probe(model, images: torch.Tensor, labels: np.ndarray, params, batches: int) -> None:
    """Per random large batch: k-means against nearest neighbours, pixels and every stage."""
    size = min(params.train.large_batch, len(images))
    for b in range(batches):
        idx = np.random.default_rng(b).choice(len(images), size, replace=False)
        print(f"# batch {b}: {size} images")
        pixels = clean_view(images[idx], params.data.grayscale)
        print(neighbour_row("pixels", pixels, labels[idx], params.model.num_clusters))
        for name, feats in stage_features(model, images[idx], params.data.grayscale).items():
            print(neighbour_row(name, feats, labels[idx], params.model.num_clusters))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "model.pt")
    parser.add_argument("--dataset", type=Path, default=ROOT / "data" / "dataset")
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--batches", type=int, default=0, help="k-means vs nearest neighbours in N batches")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, params = load_model(args.model)
    data = read_dataset(args.dataset)
    images = prepare_images(data.images, params.model.input_size, params.data.grayscale)
    labels = np.asarray(data.labels)
    if args.batches:
        neighbour_probe(model, images, labels, params, args.batches)
        return
    k = params.model.num_clusters
    with torch.no_grad():
        own = model.eval()(clean_view(images, params.data.grayscale)).probs.argmax(1).numpy()
    print(f"# {args.model}, {len(images)} images, K = {k}")
    print(f"{'network argmax':<20} ACC {cluster_scores(own, labels).acc:.3f}")
    for name, feats in stage_features(model, images, params.data.grayscale).items():
        points = F.normalize(feats.float(), dim=1).numpy()
        found = KMeans(k, n_init=10, random_state=0).fit_predict(points)
        print(f"k-means {name:<20} ACC {cluster_scores(found, labels).acc:.3f}  ({points.shape[1]} dims)")


if __name__ == "__main__":
    run_main(main)

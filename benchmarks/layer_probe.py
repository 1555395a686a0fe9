"""Where does a trained network's cluster information sit? (the basis of train.relations: features)

Loads a trained-model file and the stored data set it was trained on, and clusters the clean
features of each backbone stage (after each max-pool, unit length), the label features and the
global head's probabilities with k-means (K clusters, 10 restarts); prints each one's ACC beside
the network's own argmax ACC. Labels only score the result.

    .venv/bin/python benchmarks/layer_probe.py                      # models/model.pt, data/dataset
    .venv/bin/python benchmarks/layer_probe.py --model m.pt --dataset d --threads 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans

from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import read_dataset
from gatcluster.data.views import clean_view
from gatcluster.evaluation.metrics import cluster_scores
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "model.pt")
    parser.add_argument("--dataset", type=Path, default=ROOT / "data" / "dataset")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, params = load_model(args.model)
    data = read_dataset(args.dataset)
    images = prepare_images(data.images, params.model.input_size, params.data.grayscale)
    labels = data.labels
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
    main()

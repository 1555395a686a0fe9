"""Clustering quality: GATCluster (default params) vs k-means on raw pixels, on any source.

Trains GATCluster on the CPU for each seed with the params of params.yaml, and runs k-means
(raw pixels in [0, 1], n_init=10) with the same seeds on exactly the same images, in one run.
Prints ACC / NMI / ARI per run and mean ± std, with wall time per run (data loading included).

    .venv/bin/python benchmarks/quality.py                 # seeds 0 1 2, 2 threads
    .venv/bin/python benchmarks/quality.py --seeds 0 --set train.iterations=20
    .venv/bin/python benchmarks/quality.py --seeds 0 1 2 3 4 --compare-off   # also every addition off
    .venv/bin/python benchmarks/quality.py --compare-set experimental.relations=targets  # also these
    .venv/bin/python benchmarks/quality.py --source fashion-mnist --root /data   # an offline copy
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans

from gatcluster.config.loading import load_params, parse_overrides, replace_params
from gatcluster.config.params import ADDITIONS_OFF
from gatcluster.config.params_edit import preset_names, preset_overrides
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset
from gatcluster.evaluation.metrics import cluster_scores
from gatcluster.training.fit import fit
from gatcluster.training.passes import predict_clusters

# ablation.py sits beside this script: its data loader (bundled, or an offline copy under
# data.root) is reused.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import load_data  # noqa: E402
from cli_args import positive_int, run_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_gatcluster(params, seed: int) -> dict:
    """Load the data, train with `seed`, predict; scores and wall time (loading included)."""
    tic = time.perf_counter()
    data = load_data(params)
    params = replace_params(params, {"seed": seed, "train.device": "cpu", "train.checkpoint_every": 0})
    images = prepare_images(
        fit_dataset(data, params.model.input_size).images, params.model.input_size, params.data.grayscale
    )
    result = fit(params, images)
    pred = predict_clusters(result.model, images, 500, params.data.grayscale, torch.device("cpu"))
    seconds = time.perf_counter() - tic
    scores = cluster_scores(pred.numpy(), data.labels).as_dict()
    print(f"# seed {seed}: ACC {scores['acc']:.3f} in {seconds:.1f} s", file=sys.stderr, flush=True)
    return {**scores, "seconds": seconds}


def run_kmeans(params, seed: int) -> dict:
    """k-means on raw pixels scaled to [0, 1] of the same images; scores and wall time."""
    tic = time.perf_counter()
    data = load_data(params)
    pixels = data.images.reshape(len(data.images), -1).astype(np.float64) / 255.0
    pred = KMeans(n_clusters=params.model.num_clusters, n_init=10, random_state=seed).fit_predict(pixels)
    return {**cluster_scores(pred, data.labels).as_dict(), "seconds": time.perf_counter() - tic}


def summarize(runs: list[dict]) -> dict:
    """Mean and (population) std of each score over runs."""
    keys = ("acc", "nmi", "ari", "seconds")
    return {k: (statistics.fmean(r[k] for r in runs), statistics.pstdev(r[k] for r in runs)) for k in keys}


def print_table(name: str, runs: list[dict], seeds: list[int]) -> None:
    """Per-seed lines and the mean ± std line of one method."""
    for seed, r in zip(seeds, runs, strict=True):
        scores = f"ACC {r['acc']:.3f}  NMI {r['nmi']:.3f}  ARI {r['ari']:.3f}"
        print(f"{name:<13} seed {seed}  {scores}  {r['seconds']:7.1f} s")
    s = summarize(runs)
    cells = "  ".join(f"{k.upper()} {m:.3f} ± {sd:.3f}" for k, (m, sd) in s.items() if k != "seconds")
    print(f"{name:<13} mean    {cells}  {s['seconds'][0]:7.1f} s/run")


def cpu_model() -> str:
    """The CPU's model name: seeded runs repeat exactly only on the same CPU and thread count."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0] if names else platform.machine()}, {os.cpu_count()} cores"


def source_overrides(source: str | None, root: Path | None) -> dict:
    """The overrides of `--source` (its preset where one is shipped, else just the source) and `--root`."""
    overrides: dict = {}
    if source is not None:
        overrides = preset_overrides(source) if source in preset_names() else {"data.source": source}
    if root is not None:
        overrides["data.root"] = str(root)
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--source", help="data.source (default: the params file's), with its preset")
    parser.add_argument("--root", type=Path, help="data.root: the offline copy of a downloadable source")
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="params overrides")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--compare-off",
        action="store_true",
        help="also train with every trainer addition off (the paper's trainer with these params)",
    )
    parser.add_argument(
        "--compare-set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="also train with these overrides on top of the params (e.g. the previous defaults)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = replace_params(load_params(args.params), source_overrides(args.source, args.root))
    params = replace_params(params, parse_overrides(args.set))
    print(f"# {cpu_model()}, torch {torch.__version__}, {args.threads} threads")
    print(f"# source {params.data.source}, overrides {args.set or 'none'}")
    gat = [run_gatcluster(params, s) for s in args.seeds]
    off = (
        [run_gatcluster(replace_params(params, ADDITIONS_OFF), s) for s in args.seeds]
        if args.compare_off
        else []
    )
    other_params = replace_params(params, parse_overrides(args.compare_set))
    other = [run_gatcluster(other_params, s) for s in args.seeds] if args.compare_set else []
    km = [run_kmeans(params, s) for s in args.seeds]
    print_table("GATCluster", gat, args.seeds)
    for name, runs in (("additions off", off), (" ".join(args.compare_set), other)):
        if runs:
            print_table(name, runs, args.seeds)
            ratio = summarize(gat)["seconds"][0] / summarize(runs)["seconds"][0]
            print(f"# time ratio GATCluster / {name}: {ratio:.2f}")
    print_table("k-means", km, args.seeds)
    if args.out:
        results = {
            "seeds": args.seeds,
            "gatcluster": gat,
            "additions_off": off,
            "compare_set": {"overrides": args.compare_set, "runs": other},
            "kmeans": km,
        }
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    run_main(main)

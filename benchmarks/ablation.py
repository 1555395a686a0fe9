"""Screening of the trainer's label-free switches: named configurations × seeds, in one run.

Each configuration is a set of params overrides on top of params.yaml (plus `--set` overrides for
all of them, e.g. a shorter budget). Runs go in parallel worker processes with a fixed number of
torch threads each (2 cores: `--jobs 2 --threads 1`), results are appended to a JSON-lines file as
they finish, and the table prints mean and worst ACC, mean wall time and, where several heads were
trained, the ACC of the head chosen without labels beside the best head's (labels are used here
only to score, after training).

    .venv/bin/python benchmarks/ablation.py --configs baseline heads-k bright0.8 --seeds 0 1 2 \\
        --set train.iterations=100 --jobs 2 --threads 1 --out reports/ablation.jsonl
    .venv/bin/python benchmarks/ablation.py --list
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from cli_args import positive_int, run_main  # benchmarks/ is this script's folder

ROOT = Path(__file__).resolve().parents[1]

# Configurations against today's trainer. The screened switches that lost (EMA targets, Sinkhorn
# sweeps, confidence masking, extra views, candidate starts, stroke and elastic jitter, resampled
# views) were removed from the trainer; their results stay in docs/experiments.md.
CONFIGS: dict[str, dict] = {
    "baseline": {},
    "entropy6": {"train.loss_weights.entropy": 6, "train.loss_weights.entropy_att": 6},
    "wide": {"model.width_mult": 0.5},
    "heads": {"experimental.num_heads": 5, "model.fea_dim": 32},
    "heads-k": {"experimental.num_heads": 5},
    "overcluster": {"experimental.overcluster": 50, "model.fea_dim": 32},
    "overcluster-k": {"experimental.overcluster": 50},
    "heads-over": {"experimental.num_heads": 5, "experimental.overcluster": 50, "model.fea_dim": 32},
    "fp32": {"train.amp": False},
    "fp32-nchw": {"train.amp": False, "train.channels_last": False},
    "fea64": {"model.fea_dim": 64},
    # The iteration count (default 200): half and one and a half times the budget, screened on
    # mnist5k, digits and Fashion-MNIST (350: an earlier single run, mnist5k seed 0, 2026-11-26).
    "iters100": {"train.iterations": 100},
    "iters300": {"train.iterations": 300},
    "iters350": {"train.iterations": 350},
    "lr1e-3": {"train.lr": 0.001},
    # Separability relations from k-means on the mid-level features instead of the targets (the
    # default since 2026-11-26: every row above was screened with relations from the targets).
    "relfeat": {"experimental.relations": "features"},
    "relfeat-sep3": {"experimental.relations": "features", "train.loss_weights.separability": 3},
    "relations-targets": {"experimental.relations": "targets"},
    # Relations from k-means on the spectral embedding of the features' 10-nearest-neighbour graph.
    "spectral": {"experimental.relations": "spectral"},
    # Stronger brightness jitter (factors 0.2-1.8): clothes come in every shade, digits in one.
    "bright0.8": {"augment.brightness": 0.8},
    # Targets from probabilities averaged over each image's k nearest neighbours in the mid-level
    # features (k = 5 is the default since 2026-12-05; nbr5 and nbr10 were screened against the
    # brightness-0.8 runs without neighbours; nbr0 turns them off).
    "nbr0": {"experimental.neighbours": 0},
    "nbr5": {"experimental.neighbours": 5},
    "nbr10": {"experimental.neighbours": 10},
    # The authors' geometric strengths (the defaults double rotation and shear and widen shift and zoom).
    "aug-authors": {
        "augment.degrees": 10,
        "augment.shear": 10,
        "augment.translate": 0.1,
        "augment.scale": [0.8, 1.2],
    },
    "aug-strong": {
        "augment.degrees": 30,
        "augment.shear": 30,
        "augment.translate": 0.2,
        "augment.scale": [0.6, 1.4],
    },
}


def stop_with_parent(parent_pid: int) -> None:
    """Worker initializer: exit when the benchmark process is gone (killed, Ctrl-C), leaving no orphan."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def load_data(params):
    """The images and labels of params.data.source, read from `data.root` where the source needs one.

    Bundled sources load as they are; the others read the offline copy under `data.root` (e.g.
    `--set data.root=/data` with `FashionMNIST/raw/` inside it): benchmarks never download.
    """
    import tempfile

    from gatcluster.data.sources import load_source

    root = Path(params.data.root) if params.data.root else None
    with tempfile.TemporaryDirectory() as cache:
        data, _ = load_source(params.data.source, root, params.model.input_size, Path(cache))
    return data


def run_one(params_file: str, overrides: dict, seed: int, threads: int) -> dict:
    """Train one configuration with one seed on the CPU; scores of the final (selected) model."""
    import torch

    torch.set_num_threads(threads)
    from gatcluster.config.loading import load_params, replace_params
    from gatcluster.data.prepare import prepare_images
    from gatcluster.data.store import fit_dataset
    from gatcluster.evaluation.metrics import cluster_scores
    from gatcluster.training.fit import fit
    from gatcluster.training.passes import predict_clusters

    fixed = {"seed": seed, "train.device": "cpu", "train.checkpoint_every": 0, "train.eval_every": 0}
    params = replace_params(load_params(Path(params_file)), {**overrides, **fixed})
    tic = time.perf_counter()
    data = load_data(params)
    images = prepare_images(
        fit_dataset(data, params.model.input_size).images, params.model.input_size, params.data.grayscale
    )
    result = fit(params, images)
    pred = predict_clusters(result.model, images, 500, params.data.grayscale, torch.device("cpu"))
    out = {**cluster_scores(pred.numpy(), data.labels).as_dict(), "seconds": time.perf_counter() - tic}
    if result.head_predictions:
        head_accs = [cluster_scores(p, data.labels).acc for p in result.head_predictions]
        out.update(selected_head=result.selected_head, head_accs=head_accs, best_head_acc=max(head_accs))
    return out


def summary_line(name: str, runs: list[dict]) -> str:
    """Mean and worst ACC, mean NMI, mean time; selected vs best head where heads were chosen."""
    accs = [r["acc"] for r in runs]
    nmi, seconds = statistics.fmean(r["nmi"] for r in runs), statistics.fmean(r["seconds"] for r in runs)
    line = (
        f"{name:<16} n={len(runs)}  ACC mean {statistics.fmean(accs):.3f}  worst {min(accs):.3f}  "
        f"NMI {nmi:.3f}  {seconds:6.1f} s"
    )
    if all("best_head_acc" in r for r in runs):
        best = statistics.fmean(r["best_head_acc"] for r in runs)
        line += f"  selected-head ACC {statistics.fmean(accs):.3f} vs best head {best:.3f}"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every config"
    )
    parser.add_argument("--jobs", type=positive_int, default=2, help="runs at once (worker processes)")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads per run")
    parser.add_argument("--out", type=Path, help="append one JSON line per finished run here")
    parser.add_argument("--list", action="store_true", help="print the named configurations and exit")
    args = parser.parse_args()
    if args.list:
        for name, overrides in CONFIGS.items():
            print(f"{name:<16} {overrides or 'params.yaml as it is'}")
        return
    from gatcluster.config.loading import parse_overrides

    common = parse_overrides(args.set)
    print(
        f"# configs {args.configs}, seeds {args.seeds}, overrides {args.set or 'none'}, "
        f"{args.jobs} jobs × {args.threads} threads"
    )
    results: dict[str, list[dict]] = {name: [] for name in args.configs}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        args.jobs, mp_context=context, initializer=stop_with_parent, initargs=(os.getpid(),)
    ) as pool:
        futures = {
            pool.submit(run_one, str(args.params), {**CONFIGS[name], **common}, seed, args.threads): (
                name,
                seed,
            )
            for name in args.configs
            for seed in args.seeds
        }
        for future in as_completed(futures):
            name, seed = futures[future]
            run = {"config": name, "seed": seed, **future.result()}
            results[name].append(run)
            print(f"  {name:<16} seed {seed}  ACC {run['acc']:.3f}  {run['seconds']:6.1f} s", flush=True)
            if args.out:
                with args.out.open("a") as fh:
                    fh.write(json.dumps({**run, "overrides": {**CONFIGS[name], **common}}) + "\n")
    for name in args.configs:
        print(summary_line(name, results[name]))


if __name__ == "__main__":
    run_main(main)

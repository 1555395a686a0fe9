"""Where one outer iteration's time goes, and training images/s, with and without bf16 autocast.

Times each phase of the two-step trainer on mnist5k with params.yaml (CPU): BatchNorm re-estimation
on the clean large batch, the target forward pass, the targets (k-means with its restarts), the
augmented view, and the R·⌊L/B⌋ optimizer steps. "Training images/s" counts the images of the
optimizer steps (R·⌊L·V/B⌋·B per iteration) over the whole iteration's time, targets included.

    .venv/bin/python benchmarks/train_speed.py                 # 2 threads, 5 iterations, amp off/on
    .venv/bin/python benchmarks/train_speed.py --iterations 3 --set experimental.num_heads=5
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import torch
from cli_args import positive_int, run_main  # benchmarks/ is this script's folder

from gatcluster.config.loading import load_params, parse_overrides, replace_params
from gatcluster.config.params import Params
from gatcluster.data.bundled import BUNDLED_SOURCES
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset
from gatcluster.training.losses import (
    compute_targets,
    kmeans_points,
    neighbour_mean,
    neighbour_ranking,
    relation_points,
    uses_feature_points,
)
from gatcluster.training.passes import chunked_probs_and_middle, cpu_has_native_bf16, reestimate_batchnorm
from gatcluster.training.streams import AUG_VIEW, derived_generator, large_batch_indices
from gatcluster.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU does not)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(phases: dict[str, float], name: str, fn, *args, device: torch.device = CPU):
    """Run fn(*args), adding its wall time (device work included) to phases[name]; its result."""
    synchronize(device)
    tic = time.perf_counter()
    result = fn(*args)
    synchronize(device)
    phases[name] += time.perf_counter() - tic
    return result


def head_sizes(params: Params, num_outputs: int) -> list[int]:
    """Clusters of each head output: K for the K-cluster heads, then the over-clustering head."""
    k, x = params.model.num_clusters, params.experimental
    return [k] * x.num_heads + [x.overcluster] * (num_outputs - x.num_heads)


def profile(
    params: Params, images: torch.Tensor, iterations: int, device: torch.device = CPU
) -> dict[str, float]:
    """Mean seconds per iteration of each phase (after one warm-up iteration) on `device`."""
    trainer = Trainer(params, images, device)
    try:
        return profile_trainer(trainer, params, images, iterations, device)
    finally:
        # As fit does: a recorded step's memory pool and the CUDA read-ahead thread would otherwise
        # outlive the profile (the recorded step refers back to its trainer: a reference cycle)
        # and inflate a later peak-memory reading.
        trainer.end_training()
        trainer.close()


def profile_trainer(
    trainer: Trainer, params: Params, images: torch.Tensor, iterations: int, device: torch.device
) -> dict[str, float]:
    """`profile`'s measurement with a trainer that the caller releases."""
    t, x = params.train, params.experimental
    trainer.run_iteration(0)  # warm-up: first-call costs of oneDNN / cuDNN kernels
    model, args = trainer.output_model, (x.target_chunk, params.data.grayscale, device)
    phases: dict[str, float] = defaultdict(float)
    for it in range(1, iterations + 1):
        batch = trainer.rows(large_batch_indices(len(images), t.large_batch, it, params.seed))
        if x.bn_reestimate:
            refit_args = (model, batch, *args, t.channels_last, t.amp)
            timed(phases, "BatchNorm re-estimation", reestimate_batchnorm, *refit_args, device=device)
        features = uses_feature_points(x.relations, x.neighbours)
        forward_args = (model, batch, *args, t.amp, t.channels_last, features, True)
        probs, middle = timed(
            phases, "target forward pass", chunked_probs_and_middle, *forward_args, device=device
        )
        points = (
            timed(phases, "relation points (PCA)", relation_points, middle, it, device=device)
            if features
            else None
        )
        nearest = timed(
            phases, "neighbour ranking", neighbour_ranking, points, x.relations, x.neighbours, device=device
        )
        if x.neighbours > 0:
            probs = [
                timed(phases, "neighbour mean", neighbour_mean, p, nearest[:, : x.neighbours], device=device)
                for p in probs
            ]
        sizes = head_sizes(params, len(probs))
        space = {}
        for k in set(sizes):
            if x.relations == "spectral":
                embed_args = (x.relations, points, nearest, k)
                space[k] = timed(phases, "spectral embedding", kmeans_points, *embed_args, device=device)
            else:
                space[k] = kmeans_points(x.relations, points, nearest, k)
        targets = [
            timed(
                phases,
                "targets incl. k-means",
                compute_targets,
                *(p, k, x.kmeans_n_init, it, x.guard_min_ratio, space[k]),
                device=device,
            )
            for p, k in zip(probs, sizes, strict=True)
        ]
        gen = derived_generator(params.seed, it, AUG_VIEW)
        timed(phases, "augmented views", trainer.augment, batch, gen, device=device)
        timed(phases, "optimizer steps", trainer.train_on, batch, targets, it, device=device)
    phases["optimizer steps"] -= phases["augmented views"]  # train_on draws its views too
    return {k: v / iterations for k, v in phases.items()}


def training_images(params: Params) -> int:
    """Images seen by the optimizer steps of one outer iteration."""
    t = params.train
    return t.repeats * (t.large_batch // t.sub_batch) * t.sub_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--iterations", type=positive_int, default=5)
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="params overrides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    base = replace_params(load_params(args.params), {**overrides, "train.device": "cpu"})
    data = BUNDLED_SOURCES[base.data.source]()
    images = prepare_images(
        fit_dataset(data, base.model.input_size).images, base.model.input_size, base.data.grayscale
    )
    print(f"# {args.threads} threads, torch {torch.__version__}, native CPU bf16: {cpu_has_native_bf16()}")
    print(f"# source {base.data.source}, overrides {args.set or 'none'}, {args.iterations} iterations each")
    for amp in (False, True):
        params = replace_params(base, {"train.amp": amp})
        phases = profile(params, images, args.iterations)
        total = sum(phases.values())
        print(
            f"train.amp={str(amp).lower()}: {total:.2f} s/iteration, "
            f"{training_images(params) / total:.0f} training images/s"
        )
        for name, seconds in phases.items():
            print(f"  {name:<40} {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    run_main(main)

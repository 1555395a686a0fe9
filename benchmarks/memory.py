"""Peak training memory: large batch L = 1000 vs 4000, and a stored data set of N = 70,000 vs 700,000.

The two-step design computes targets for L images in chunks without gradients and trains on
sub-batches, so peak memory should barely depend on L (the promise: ratio <= 1.1). The stored data
set is read memory-mapped, batch by batch, so peak memory should barely depend on N either (the
promise: ratio <= 1.2): the N runs train from a `data/dataset`-format folder (mnist5k's real images
repeated to N) through the train stage's own reader, including the checksum check and the
BatchNorm refit over all N images at the end. Each configuration runs in its own child process,
so each peak RSS is its alone; on a GPU the peak of `torch.cuda.max_memory_allocated` is reported too.

    .venv/bin/python benchmarks/memory.py                  # L = 1000 and 4000, 2 iterations each
    .venv/bin/python benchmarks/memory.py --dataset-sizes 70000 700000   # same L and B, N varies
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from gatcluster.config.loading import load_params, replace_params
from gatcluster.data.bundled import BUNDLED_SOURCES
from gatcluster.data.model_images import ModelImages
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset, read_dataset, write_dataset
from gatcluster.training.fit import fit

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mib() -> float:
    """This process's peak resident memory since it started (exec), in MiB.

    VmHWM, not getrusage's ru_maxrss: on Linux ru_maxrss survives fork + exec, so a child's figure
    is at least what its parent held when it started the child (here: the data set it just wrote).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(params_path: Path, large_batch: int, iterations: int, threads: int) -> dict:
    """Train `iterations` outer iterations at `large_batch`; peak RSS (MiB) and CUDA peak."""
    torch.set_num_threads(threads)
    params = load_params(params_path)
    params = replace_params(
        params,
        {"train.large_batch": large_batch, "train.iterations": iterations, "train.checkpoint_every": 0},
    )
    data = BUNDLED_SOURCES[params.data.source]()
    images = prepare_images(
        fit_dataset(data, params.model.input_size).images, params.model.input_size, params.data.grayscale
    )
    if len(images) < large_batch:
        raise SystemExit(f"{params.data.source} has {len(images)} images, fewer than L = {large_batch}")
    fit(params, images)
    result = {
        "large_batch": large_batch,
        "peak_rss_mib": peak_rss_mib(),
    }
    if torch.cuda.is_available():
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def measure_stored(params_path: Path, data_dir: Path, iterations: int, threads: int) -> dict:
    """Train from the stored data set in `data_dir` as the train stage does; peak RSS (MiB)."""
    torch.set_num_threads(threads)
    params = replace_params(
        load_params(params_path), {"train.iterations": iterations, "train.checkpoint_every": 0}
    )
    dataset = read_dataset(data_dir, mapped=True)  # checksum verified, as in the stage
    images = ModelImages(dataset.images, params.model.input_size, params.data.grayscale)
    fit(params, images)
    return {
        "count": len(images),
        "disk_mib": (data_dir / "images.npy").stat().st_size / 2**20,
        "peak_rss_mib": peak_rss_mib(),
    }


def write_repeated(params_path: Path, count: int, out_dir: Path) -> None:
    """The params' bundled source, fitted, repeated to `count` images, as a stored data set."""
    params = load_params(params_path)
    data = fit_dataset(BUNDLED_SOURCES[params.data.source](), params.model.input_size)
    take = np.arange(count) % len(data.images)
    labels = None if data.labels is None else data.labels[take]
    write_dataset(replace(data, images=data.images[take], labels=labels), out_dir)


def run_child(args: argparse.Namespace, *child_args: str) -> dict:
    """Run this script's child mode in a fresh interpreter and parse its JSON line."""
    cmd = [sys.executable, __file__, *child_args, "--params", str(args.params)]
    cmd += ["--iterations", str(args.iterations), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare_dataset_sizes(args: argparse.Namespace) -> None:
    """Peak RSS of training from stored data sets of the two sizes; their ratio."""
    results = []
    with tempfile.TemporaryDirectory(prefix="gat-memory-") as tmp:
        for count in args.dataset_sizes:
            data_dir = Path(tmp) / f"n{count}"
            write_repeated(args.params, count, data_dir)
            results.append(run_child(args, "--child-stored", str(data_dir)))
    for r in results:
        print(f"N = {r['count']:>7} ({r['disk_mib']:.0f} MiB on disk): peak RSS {r['peak_rss_mib']:.0f} MiB")
    small, large = results
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    print(f"ratio N={large['count']} / N={small['count']}: RSS {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 4000])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--dataset-sizes", type=int, nargs=2, metavar="N", help="compare stored data sets of N images"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-stored", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.params, args.child, args.iterations, args.threads)))
        return
    if args.child_stored:
        print(json.dumps(measure_stored(args.params, args.child_stored, args.iterations, args.threads)))
        return
    if args.dataset_sizes:
        compare_dataset_sizes(args)
        return
    small, large = (run_child(args, "--child", str(size)) for size in args.sizes)
    for r in (small, large):
        cuda = f"  CUDA peak {r['cuda_peak_mib']:.0f} MiB" if "cuda_peak_mib" in r else ""
        print(f"L = {r['large_batch']:>5}: peak RSS {r['peak_rss_mib']:.0f} MiB{cuda}")
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    print(f"ratio L={args.sizes[1]} / L={args.sizes[0]}: RSS {ratio:.3f}")
    if "cuda_peak_mib" in small:
        print(f"ratio CUDA peak: {large['cuda_peak_mib'] / small['cuda_peak_mib']:.3f}")


if __name__ == "__main__":
    main()

"""Peak training memory at large batch L = 1000 vs L = 4000 with the same sub-batch.

The two-step design computes targets for L images in chunks without gradients and trains on
sub-batches, so peak memory should barely depend on L (the promise: ratio <= 1.1). Each L runs
in its own child process, so each peak RSS is that configuration's alone; on a GPU the peak of
`torch.cuda.max_memory_allocated` is reported too.

    .venv/bin/python benchmarks/memory.py                  # L = 1000 and 4000, 2 iterations each
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

from gatcluster.config.params import load_params, replace_params
from gatcluster.data.bundled import BUNDLED_SOURCES
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset
from gatcluster.training.fit import fit

ROOT = Path(__file__).resolve().parents[1]


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
        fit_dataset(data, params.data.image_size).images, params.data.image_size, params.data.grayscale
    )
    if len(images) < large_batch:
        raise SystemExit(f"{params.data.source} has {len(images)} images, fewer than L = {large_batch}")
    fit(params, images)
    result = {
        "large_batch": large_batch,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if torch.cuda.is_available():
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def run_child(args: argparse.Namespace, large_batch: int) -> dict:
    """Run `measure` in a fresh interpreter and parse its JSON line."""
    cmd = [sys.executable, __file__, "--child", str(large_batch), "--params", str(args.params)]
    cmd += ["--iterations", str(args.iterations), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 4000])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.params, args.child, args.iterations, args.threads)))
        return
    small, large = (run_child(args, size) for size in args.sizes)
    for r in (small, large):
        cuda = f"  CUDA peak {r['cuda_peak_mib']:.0f} MiB" if "cuda_peak_mib" in r else ""
        print(f"L = {r['large_batch']:>5}: peak RSS {r['peak_rss_mib']:.0f} MiB{cuda}")
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    print(f"ratio L={args.sizes[1]} / L={args.sizes[0]}: RSS {ratio:.3f}")
    if "cuda_peak_mib" in small:
        print(f"ratio CUDA peak: {large['cuda_peak_mib'] / small['cuda_peak_mib']:.3f}")


if __name__ == "__main__":
    main()

"""Training throughput of 1 and 2 processes (torchrun, DDP), on the CPU and on GPUs where present.

Each configuration trains mnist5k with params.yaml (seed, model, batches) for a few outer
iterations in its own `torchrun --standalone` launch; rank 0 reports the training images/s of the
iterations after the first (warm-up), targets included: R·⌊L·V/B⌋·B images per iteration over the
iteration's wall time, as benchmarks/train_speed.py counts them. Batch sizes are global, so every
configuration does the same work per iteration. CPU processes share the cores out
(threads = cores / processes); on CUDA each process has its own GPU.

    .venv/bin/python benchmarks/throughput.py                      # CPU 1 and 2 processes (+ GPU)
    .venv/bin/python benchmarks/throughput.py --iterations 4 --set train.large_batch=2000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from cli_args import positive_int, run_main  # benchmarks/ is this script's folder
from quality import cpu_model  # benchmarks/ is this script's folder

ROOT = Path(__file__).resolve().parents[1]


def training_images(params) -> int:
    """Images seen by the optimizer steps of one outer iteration."""
    t = params.train
    return t.repeats * (t.large_batch // t.sub_batch) * t.sub_batch


def worker(args: argparse.Namespace) -> None:
    """One rank: train, and (rank 0) write images/s of the timed iterations to args.out."""
    from gatcluster.config.loading import load_params, parse_overrides, replace_params
    from gatcluster.data.bundled import BUNDLED_SOURCES
    from gatcluster.data.prepare import prepare_images
    from gatcluster.data.store import fit_dataset
    from gatcluster.training.distributed import Ranks, start_process_group, stop_process_group
    from gatcluster.training.fit import fit

    ranks = Ranks(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    fixed = {
        "train.device": args.device,
        "train.iterations": args.iterations,
        "train.processes": ranks.world_size,
        "train.checkpoint_every": 0,
        "train.eval_every": 0,
    }
    params = replace_params(load_params(args.params), {**overrides, **fixed})
    data = BUNDLED_SOURCES[params.data.source]()
    images = prepare_images(
        fit_dataset(data, params.model.input_size).images, params.model.input_size, params.data.grayscale
    )
    start_process_group(torch.device(args.device), ranks)
    result = fit(params, images, ranks=ranks)
    stop_process_group()
    if ranks.is_main:
        seconds = [row["seconds"] for row in result.history[1:]]
        per_second = training_images(params) / statistics.fmean(seconds)
        args.out.write_text(
            json.dumps({"images_per_s": per_second, "iteration_s": statistics.fmean(seconds)})
        )


def launch(args: argparse.Namespace, device: str, processes: int, extra: list[str]) -> dict:
    """One torchrun launch of this script's worker mode; rank 0's result."""
    threads = max(1, (os.cpu_count() or 1) // processes) if device == "cpu" else 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd += [f"--nproc-per-node={processes}", __file__, "--worker", "--out", str(out)]
        cmd += ["--device", device, "--threads", str(threads), "--iterations", str(args.iterations)]
        cmd += ["--params", str(args.params), "--set", *args.set, *extra]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
        subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
        return {**json.loads(out.read_text()), "threads": threads}


def configurations() -> list[tuple[str, int, list[str]]]:
    """(device, processes, extra overrides): 1 and 2 processes, the latter also without synced
    BatchNorm in training steps (fewer collectives per step); CUDA likewise given 1 or 2 GPUs."""
    unsynced = ["experimental.sync_batchnorm=false"]
    configs = [("cpu", 1, []), ("cpu", 2, []), ("cpu", 2, unsynced)]
    gpus = torch.cuda.device_count()
    configs += [("cuda", 1, [])] if gpus >= 1 else []
    configs += [("cuda", 2, []), ("cuda", 2, unsynced)] if gpus >= 2 else []
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument(
        "--iterations", type=positive_int, default=6, help="outer iterations (the first is warm-up)"
    )
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="params overrides")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=positive_int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.iterations < 2:
        parser.error("--iterations must be at least 2 (the first one is warm-up)")
    if args.worker:
        worker(args)
        return
    from gatcluster.config.loading import load_params, parse_overrides, replace_params

    replace_params(load_params(args.params), parse_overrides(args.set))  # here, not in a worker's log
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"# {cpu_model()}, {gpu}, torch {torch.__version__}")
    print(f"# params {args.params.name}, overrides {args.set or 'none'}, {args.iterations} iterations")
    base: dict[str, float] = {}
    for device, processes, extra in configurations():
        r = launch(args, device, processes, extra)
        base.setdefault(device, r["images_per_s"])
        note = f" {extra[0]}" if extra else ""
        print(
            f"{device:<4} {processes} process(es) × {r['threads']} thread(s){note}: "
            f"{r['images_per_s']:8.0f} training images/s  ({r['iteration_s']:.2f} s/iteration, "
            f"{r['images_per_s'] / base[device]:.2f}x of 1 process)",
            flush=True,
        )


if __name__ == "__main__":
    run_main(main)

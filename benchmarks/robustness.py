"""Quality independent of the arithmetic: the defaults under every arithmetic a CPU can run.

Each variant trains the params of params.yaml (plus `--set`) for each seed on the CPU, in its own
worker process, and scores the final model on the same images (labels only score, afterwards):

    bf16-cl      bf16 autocast, channels_last, 2 threads (only on a CPU with native bf16)
    fp32-cl      float32, channels_last, 2 threads
    fp32-nchw    float32, NCHW, 2 threads
    fp32-cl-1t   float32, channels_last, 1 thread
    fp64-nchw    float64 network and losses, NCHW, 2 threads (targets stay float32)
    avx2-cl      the defaults as a CPU without AVX-512 runs them: torch's and oneDNN's kernels
                 capped at AVX2 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA), so no native bf16 and
                 float32 channels_last, 2 threads; any x86-64 CPU with AVX2 runs it

Prints one table (ACC per variant and seed, each variant's mean) and the spread over all cells
(largest minus smallest ACC) with the worst cell. Finished cells are appended to `--out` as JSON
lines as they come, and a later run with the same `--out` skips them.

    .venv/bin/python benchmarks/robustness.py                                # mnist5k, seeds 0 1 2
    .venv/bin/python benchmarks/robustness.py --variants fp32-nchw fp64-nchw --seeds 0
    .venv/bin/python benchmarks/robustness.py --set train.iterations=2 --seeds 0   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gatcluster.config.loading import parse_overrides

# ablation.py sits beside this script: its worker (train one configuration, score it) is reused.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import run_one, stop_with_parent  # noqa: E402
from cli_args import positive_int, run_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FP32 = {"train.amp": False}
NCHW = {"train.amp": False, "train.channels_last": False}
DEFAULTS = {"train.amp": True, "train.channels_last": True}
# Environment that caps torch's own kernels (ATen) and oneDNN's at AVX2: the arithmetic of a CPU
# without AVX-512, on which oneDNN also reports no native bf16, so amp trains in float32.
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


@dataclass(frozen=True)
class Variant:
    """One arithmetic: params overrides, torch's default dtype, threads, environment."""

    overrides: dict
    dtype: str = "float32"
    threads: int = 2
    env: dict = field(default_factory=dict)


VARIANTS: dict[str, Variant] = {
    "bf16-cl": Variant(DEFAULTS),
    "fp32-cl": Variant({**FP32, "train.channels_last": True}),
    "fp32-nchw": Variant(NCHW),
    "fp32-cl-1t": Variant({**FP32, "train.channels_last": True}, threads=1),
    "fp64-nchw": Variant(NCHW, dtype="float64"),
    "avx2-cl": Variant(DEFAULTS, env=AVX2_ONLY),
}


def arithmetic_in_use() -> dict:
    """What this process computes with: torch's CPU kernel level and whether bf16 is native."""
    from gatcluster.training.passes import cpu_has_native_bf16

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_has_native_bf16()}


def run_variant(params_file: str, variant: str, common: dict, seed: int) -> dict:
    """Worker (a fresh process per cell): one variant and seed in the variant's arithmetic."""
    spec = VARIANTS[variant]
    # Read by torch and oneDNN at their first kernel, which a fresh worker has not run yet.
    os.environ.update(spec.env)
    torch.set_default_dtype(getattr(torch, spec.dtype))
    arithmetic = arithmetic_in_use()
    if spec.env and (arithmetic["cpu_capability"] != "AVX2" or arithmetic["native_bf16"]):
        raise RuntimeError(f"{variant}: the kernels were not capped at AVX2 ({arithmetic})")
    return {**run_one(params_file, {**spec.overrides, **common}, seed, spec.threads), **arithmetic}


def available_variants() -> list[str]:
    """Every variant this CPU can run: bf16 autocast only where it computes bf16 natively."""
    from gatcluster.training.passes import cpu_has_native_bf16

    return [v for v in VARIANTS if v != "bf16-cl" or cpu_has_native_bf16()]


def finished_cells(out: Path | None, common: dict) -> dict[tuple[str, int], dict]:
    """Cells already in `out` for the same overrides (a resumed benchmark skips them)."""
    if out is None or not out.exists():
        return {}
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {(r["variant"], r["seed"]): r for r in rows if r.get("common") == common}


def print_table(cells: dict[tuple[str, int], dict], variants: list[str], seeds: list[int]) -> None:
    """ACC per variant × seed, each variant's mean and seconds per run; spread and worst cell."""
    print(f"{'variant':<12}" + "".join(f"  seed {s:<3}" for s in seeds) + "    mean   s/run")
    for v in variants:
        runs = [cells[(v, s)] for s in seeds if (v, s) in cells]
        accs = "".join(f"  {cells[(v, s)]['acc']:8.3f}" if (v, s) in cells else "         -" for s in seeds)
        mean = f"{statistics.fmean(r['acc'] for r in runs):7.3f}" if runs else "      -"
        secs = f"{statistics.fmean(r['seconds'] for r in runs):7.0f}" if runs else "      -"
        print(f"{v:<12}{accs}  {mean} {secs}")
    done = [(cells[(v, s)]["acc"], v, s) for v in variants for s in seeds if (v, s) in cells]
    if done:
        worst = min(done)
        spread = max(done)[0] - worst[0]
        where = f"{worst[1]}, seed {worst[2]}"
        print(f"# spread over {len(done)} cells: {spread:.3f}; worst cell {worst[0]:.3f} ({where})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: all this CPU runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="params overrides")
    parser.add_argument(
        "--jobs", type=positive_int, default=1, help="runs at once (each uses its variant's threads)"
    )
    parser.add_argument("--out", type=Path, help="append one JSON line per finished cell; skip those there")
    args = parser.parse_args()
    variants = args.variants or available_variants()
    common = parse_overrides(args.set)
    from quality import cpu_model

    print(f"# {cpu_model()}, torch {torch.__version__}; overrides {args.set or 'none'}")
    cells = finished_cells(args.out, common)
    todo = [(v, s) for v in variants for s in args.seeds if (v, s) not in cells]
    context = multiprocessing.get_context("spawn")
    # One fresh process per cell: a variant's dtype, threads and kernel level never leak into the next.
    with ProcessPoolExecutor(
        args.jobs,
        mp_context=context,
        initializer=stop_with_parent,
        initargs=(os.getpid(),),
        max_tasks_per_child=1,
    ) as pool:
        futures = {pool.submit(run_variant, str(args.params), v, common, s): (v, s) for v, s in todo}
        for future in as_completed(futures):
            v, s = futures[future]
            cells[(v, s)] = {"variant": v, "seed": s, "common": common, **future.result()}
            print(
                f"  {v:<12} seed {s}  ACC {cells[(v, s)]['acc']:.3f}  {cells[(v, s)]['seconds']:6.1f} s",
                flush=True,
            )
            if args.out:
                with args.out.open("a") as fh:
                    fh.write(json.dumps(cells[(v, s)]) + "\n")
    print_table(cells, variants, args.seeds)


if __name__ == "__main__":
    run_main(main)

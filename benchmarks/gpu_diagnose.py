"""Where CUDA training departs from the CPU: gradients, short trainings and BatchNorm statistics per
CUDA setting (cuDNN, TF32, channels_last, bf16), each against a CPU reference (docs/numerics.md).

Runs from the source tree on a stock PyTorch stack, like gpu_check.py; without CUDA only the CPU
rows run and every CUDA row says "skipped: no usable CUDA GPU".

    PYTHONPATH=. python benchmarks/gpu_diagnose.py                  # mnist5k, about 3 minutes on a GPU
    PYTHONPATH=. python benchmarks/gpu_diagnose.py --source digits --iterations 2

1. One optimizer step's gradient (same initial model, CPU-computed targets, same augmented
   sub-batch) under each setting against float64 on the CPU: cosine, relative error, norm ratio.
2. BatchNorm re-estimation on CUDA against the CPU: worst relative difference of the statistics.
3. `--iterations` iterations of seed 1 under each setting: ACC of the trainer's monitoring pass.

The cheap checks come first: a run stopped at its time limit (benchmarks/gpu_session.sh) loses
the last trainings, not the BatchNorm comparison.
"""

from __future__ import annotations

import argparse
import copy
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F

from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params
from gatcluster.data.bundled import BUNDLED_SOURCES
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset
from gatcluster.training.fit import fit
from gatcluster.training.gradient_check import sub_batch_gradient
from gatcluster.training.passes import batchnorm_layers, reestimate_batchnorm
from gatcluster.training.step_graph import GraphCaptureFailed
from gatcluster.training.streams import AUG_VIEW, derived_generator
from gatcluster.training.trainer import Trainer

NO_CUDA = "skipped: no usable CUDA GPU"
CPU = torch.device("cpu")
# (cuDNN, cuDNN TF32, channels_last, bf16 autocast) of each CUDA row; the first is torch's and
# the trainer's default.
SETTINGS = [
    (True, True, True, True),
    (True, True, True, False),
    (True, False, True, False),
    (False, False, True, False),
    (False, False, True, True),
    (True, True, False, False),
    (True, True, False, True),
]


def setting_name(cudnn: bool, tf32: bool, channels_last: bool, amp: bool) -> str:
    return f"cudnn {cudnn:d} tf32 {tf32:d} channels_last {channels_last:d} amp {amp:d}"


@contextmanager
def cuda_flags(cudnn: bool, tf32: bool):
    """cuDNN on/off and its TF32 convolutions on/off inside the block (matrix products stay at
    torch's default, float32)."""
    with torch.backends.cudnn.flags(enabled=cudnn, allow_tf32=tf32):
        yield


def params_for(source: str, device: str, **overrides) -> Params:
    base = {"seed": 1, "data.source": source, "train.device": device, "train.checkpoint_every": 0}
    return replace_params(Params(), {**base, **overrides})


def compare(name: str, grad: torch.Tensor, reference: torch.Tensor) -> None:
    cos = F.cosine_similarity(grad, reference, dim=0).item()
    err = ((grad - reference).norm() / reference.norm()).item()
    print(f"  {name:<48} cos {cos:.4f}  rel.err {err:.3g}  |g|/|g_ref| {grad.norm() / reference.norm():.3f}")


def gradients(images: torch.Tensor, source: str) -> None:
    """Part 1: one step's gradient per setting against float64 on the CPU."""
    print("## one optimizer step's gradient against float64 on the CPU")
    trainer = Trainer(params_for(source, "cpu", **{"train.amp": False}), images, CPU)
    batch = trainer.large_batch(0)
    targets = [t[:128] for t in trainer.compute_targets(batch, 0)[0]]
    x = trainer.augment(batch, derived_generator(1, 0, AUG_VIEW))[:128]
    model, loss_fn = trainer.model, trainer.loss_fn
    reference = sub_batch_gradient(model, loss_fn, x, targets, CPU, torch.float64)
    for cl, amp in ((False, False), (True, False), (True, True)):
        grad = sub_batch_gradient(model, loss_fn, x, targets, CPU, torch.float32, cl, amp)
        compare(f"cpu float32 channels_last {cl:d} amp {amp:d}", grad, reference)
    for cudnn, tf32, cl, amp in SETTINGS:
        if not torch.cuda.is_available():
            print(f"  cuda {setting_name(cudnn, tf32, cl, amp)}: {NO_CUDA}")
            continue
        with cuda_flags(cudnn, tf32):
            grad = sub_batch_gradient(
                model, loss_fn, x, targets, torch.device("cuda"), torch.float32, cl, amp
            )
        compare(f"cuda {setting_name(cudnn, tf32, cl, amp)}", grad, reference)


def trainings(images: torch.Tensor, labels, source: str, iterations: int) -> None:
    """Part 2: a short training of seed 1 per setting; ACC of the monitoring pass."""
    print(f"## {iterations} iterations of seed 1 per setting: monitoring ACC")
    runs = [("cpu (this machine's default arithmetic)", "cpu", (True, True, True, True))]
    runs += [(f"cuda {setting_name(*s)}", "cuda", s) for s in SETTINGS]
    recording = True  # until a capture fails: then the process trains eagerly, best effort
    for name, device, (cudnn, tf32, cl, amp) in runs:
        if device == "cuda" and not torch.cuda.is_available():
            print(f"  {name}: {NO_CUDA}")
            continue
        overrides = {"train.iterations": iterations, "train.eval_every": iterations}
        overrides |= {"train.channels_last": cl, "train.amp": amp, "experimental.cuda_graphs": recording}
        params = params_for(source, device, **overrides)
        try:
            with cuda_flags(cudnn, tf32) if device == "cuda" else nullcontext():
                history = fit(params, images, labels).history
        except GraphCaptureFailed as err:
            print(f"  {name}: {err}; the settings after it train with eager steps")
            recording = False
            continue
        last = history[-1]
        print(f"  {name:<48} ACC {last['acc']:.3f}  largest cluster {last['targets/largest_cluster']:.3f}")


def batchnorm_statistics(images: torch.Tensor, source: str) -> None:
    """Part 3: BatchNorm re-estimation on CUDA against the CPU, same model and images."""
    print("## BatchNorm re-estimation: worst relative difference to the CPU")
    if not torch.cuda.is_available():
        print(f"  {NO_CUDA}")
        return
    trainer = Trainer(params_for(source, "cpu"), images, CPU)
    for it in range(2):
        trainer.run_iteration(it)

    def statistics(device: torch.device, channels_last: bool, amp: bool):
        model = copy.deepcopy(trainer.model).to(device)
        model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        reestimate_batchnorm(model, images[:1000], 200, True, device, channels_last, amp)
        return [(b.running_mean.cpu(), b.running_var.cpu()) for b in batchnorm_layers(model)]

    reference = statistics(CPU, False, False)
    for cl, amp in ((True, True), (True, False), (False, False)):
        found = statistics(torch.device("cuda"), cl, amp)
        worst = [
            max(((a[i] - r[i]).norm() / r[i].norm()).item() for a, r in zip(found, reference, strict=True))
            for i in (0, 1)
        ]
        print(f"  cuda channels_last {cl:d} amp {amp:d}: mean {worst[0]:.2g}  var {worst[1]:.2g}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default="mnist5k", choices=sorted(BUNDLED_SOURCES))
    parser.add_argument("--iterations", type=int, default=30, help="iterations of each short training")
    args = parser.parse_args()
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"# torch {torch.__version__}, CUDA GPU: {name}")
    data = BUNDLED_SOURCES[args.source]()
    images = prepare_images(fit_dataset(data, 32).images, 32, True)
    gradients(images, args.source)
    batchnorm_statistics(images, args.source)
    trainings(images, data.labels, args.source, args.iterations)


if __name__ == "__main__":
    main()

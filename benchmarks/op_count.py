"""How many aten ops, and host reads, each part of one default training iteration runs (CPU).

On a GPU every op that is not a view is a kernel the host launches, and a host read (`.item()`,
`nonzero`, `torch.equal`, ...) waits for the GPU: the counts bound what an eager GPU iteration
costs the host, and show what a CUDA graph of the optimizer step saves (docs/scaling.md, "Training
on a GPU"). Counted with a TorchDispatchMode on the CPU, after one warm-up iteration.

    .venv/bin/python benchmarks/op_count.py                    # mnist5k, the default params
    .venv/bin/python benchmarks/op_count.py --source digits

Two CPU-only counts differ on CUDA: the CPU's Adam reads each parameter's step count back (CUDA's
recorded steps use capturable Adam, which does not), and F.one_hot checks its input's range with
two host reads on the CPU only (k-means).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params
from gatcluster.data.bundled import BUNDLED_SOURCES
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset
from gatcluster.training.streams import AUG_VIEW, derived_generator
from gatcluster.training.trainer import Trainer

CPU = torch.device("cpu")
# Ops that read a device value back to the host (a synchronisation on CUDA).
HOST_READS = {"_local_scalar_dense", "item", "nonzero", "masked_select", "equal", "is_nonzero"}


class OpCount(TorchDispatchMode):
    """Counts the aten ops run inside the block, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func._opname] += 1
        return func(*args, **(kwargs or {}))

    def host_reads(self) -> int:
        """Ops in the block that read a value back to the host."""
        return sum(n for name, n in self.ops.items() if name in HOST_READS)


def counted(part: Callable[[], object]) -> tuple[object, OpCount]:
    """`part()`'s result and the ops it ran."""
    with OpCount() as count:
        result = part()
    return result, count


def count_iteration(params: Params, images: torch.Tensor) -> dict[str, OpCount]:
    """Op counts of each part of iteration 2 (iteration 1 warms the trainer up)."""
    trainer = Trainer(params, images, CPU)
    trainer.run_iteration(0)
    batch = trainer.large_batch(1)
    targets, target_ops = counted(lambda: trainer.compute_targets(batch, 1))
    view, view_ops = counted(lambda: trainer.augment(batch, derived_generator(params.seed, 1, AUG_VIEW)))
    trainer.model.train()
    idx = torch.arange(params.train.sub_batch)
    adam_step = trainer.optimizer.step
    trainer.optimizer.step = lambda *args, **kwargs: None  # the step's network part alone first
    _, network_ops = counted(lambda: trainer.optimizer_step(view[idx], targets, idx))
    trainer.optimizer.step = adam_step
    _, adam_ops = counted(adam_step)
    return {
        "target pass (BatchNorm refit, forward, relations, k-means)": target_ops,
        "augmented view of the large batch": view_ops,
        "one optimizer step: forward, losses, backward": network_ops,
        "one optimizer step: Adam (torch's CPU default)": adam_ops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="mnist5k", choices=sorted(BUNDLED_SOURCES))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {"data.source": args.source, "train.device": "cpu", "train.checkpoint_every": 0}
    params = replace_params(Params(), {**overrides, "train.eval_every": 0})
    images = prepare_images(fit_dataset(BUNDLED_SOURCES[args.source](), 32).images, 32, True)
    t = params.train
    steps = t.repeats * (min(t.large_batch, len(images)) // t.sub_batch)
    print(f"# torch {torch.__version__}, source {args.source}, default params, {steps} steps per iteration")
    for name, count in count_iteration(params, images).items():
        print(f"  {name:<60} {sum(count.ops.values()):6d} ops  {count.host_reads():4d} host reads")


if __name__ == "__main__":
    main()

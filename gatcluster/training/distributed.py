"""Data-parallel training over torch.distributed processes (torchrun): shares, gathers, synced BatchNorm.

Batch sizes stay global. Every rank computes the clean predictions of its share of the large batch;
they are gathered, rank 0 computes the targets from all of them and broadcasts them, so every rank
holds the same targets. Each rank trains on its share of each sub-batch; the sub-batch outputs are
gathered with autograd, so every rank evaluates the same loss over the whole sub-batch, and
DistributedDataParallel averages the gradients (the gather's backward sums the shares' gradients
over ranks, DDP's mean divides by the world size: the result is the one-process gradient).

BatchNorm statistics are synchronised across ranks (training steps and re-estimation) by
`SyncedBatchNorm2d`. torch's own `nn.SyncBatchNorm` refuses CPU tensors (gloo) and cannot be turned
off for the passes that rank 0 runs alone (monitoring, the final refit, head selection), so this
subclass of `nn.BatchNorm2d` all-reduces (sum, sum of squares, count) with torch.distributed's
autograd-aware all_reduce while `synced` is on, and is a plain BatchNorm2d otherwise.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in the process group; the default is one process alone."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the process's index on its machine: its GPU

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, the model, reports and tracking records."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process trains."""
        return self.world_size > 1


SINGLE_PROCESS = Ranks()


def start_process_group(device: torch.device, ranks: Ranks) -> None:
    """Join the process group torchrun set up (env:// rendezvous): NCCL on CUDA, gloo on the CPU."""
    if ranks.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world_size)


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """The device of this rank: its own GPU (cuda:<local rank>) when training on CUDA."""
    return torch.device("cuda", ranks.local_rank) if device.type == "cuda" else device


class AllHeads(nn.Module):
    """`model.forward_heads` as `forward`, the call DistributedDataParallel hooks into."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> list:
        return self.model.forward_heads(x)


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """`model`'s every-head forward under DistributedDataParallel (gradients averaged over ranks).

    Buffers are not broadcast: synced BatchNorm keeps the statistics equal on every rank.
    """
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # torch renamed broadcast_buffers to forward_sync_buffers; accept both versions.
    no_buffer_sync = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
        else {"broadcast_buffers": False}
    )
    return DistributedDataParallel(AllHeads(model), device_ids=ids, **no_buffer_sync)


def stop_process_group() -> None:
    """Leave the process group (no-op when none was started)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def share(rows: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """This rank's contiguous share of `rows`; equal shares (the check stage makes batch sizes
    multiples of the world), and a ValueError rather than rows silently left out otherwise."""
    if not ranks.distributed:
        return rows
    size, left = divmod(len(rows), ranks.world_size)
    if left:
        raise ValueError(
            f"{len(rows)} rows do not split evenly over {ranks.world_size} training processes: "
            "make train.large_batch and train.sub_batch multiples of train.processes, at most the data size"
        )
    return rows[ranks.rank * size : (ranks.rank + 1) * size]


def gather_rows(part: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Every rank's equal-sized `part`, concatenated in rank order (no gradients)."""
    if not ranks.distributed:
        return part
    parts = [torch.empty_like(part) for _ in range(ranks.world_size)]
    dist.all_gather(parts, part.contiguous())
    return torch.cat(parts)


def gather_rows_with_grad(part: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """`gather_rows` whose backward returns each rank the gradient of its own rows, summed over ranks."""
    if not ranks.distributed:
        return part
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # see all_reduce_with_grad
        return torch.cat(dist_fn.all_gather(part.contiguous()))


def all_reduce_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over ranks; its backward sums the gradients over ranks.

    torch marks torch.distributed.nn.functional deprecated in favour of the private
    `_functional_collectives`; the public one is kept until that API is public.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return dist_fn.all_reduce(tensor)


def broadcast_from_main(tensors: list[torch.Tensor], ranks: Ranks) -> None:
    """Overwrite `tensors` on every rank with rank 0's (same shapes and dtypes everywhere)."""
    if ranks.distributed:
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


class SyncedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics span every rank while `synced` is on."""

    synced: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.synced and dist.is_initialized()):
            return super().forward(x)
        # Sums in float64: the variance as E[x²] − E[x]² in one collective, without cancellation.
        xd = x.double()
        local = torch.cat(
            [xd.sum(dim=(0, 2, 3)), (xd * xd).sum(dim=(0, 2, 3)), xd.new_tensor([xd.numel() / xd.shape[1]])]
        )
        total = all_reduce_with_grad(local)
        channels = x.shape[1]
        count = total[-1]
        mean = total[:channels] / count
        var = (total[channels : 2 * channels] / count - mean * mean).clamp_min(0.0)
        stats_dtype = self.running_mean.dtype
        self.update_running_stats(mean.detach().to(stats_dtype), var.detach().to(stats_dtype), count.item())
        shape, work = (1, channels, 1, 1), torch.promote_types(x.dtype, torch.float32)
        mean, inv_std = mean.to(work).view(shape), torch.rsqrt(var.to(work).view(shape) + self.eps)
        y = (x.to(work) - mean) * inv_std
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        """What nn.BatchNorm2d does in training mode: EMA (or cumulative average) with unbiased var."""
        if not self.track_running_stats:
            return
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (count / max(count - 1.0, 1.0))
        self.running_mean.mul_(1.0 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1.0 - factor).add_(unbiased, alpha=factor)


def use_synced_batchnorm(module: nn.Module) -> nn.Module:
    """Turn every BatchNorm2d of `module` into a SyncedBatchNorm2d in place (weights and stats kept)."""
    for child in module.modules():
        if type(child) is nn.BatchNorm2d:
            child.__class__ = SyncedBatchNorm2d
    return module


@contextmanager
def batchnorm_synced(module: nn.Module, on: bool = True) -> Iterator[None]:
    """Synchronise `module`'s SyncedBatchNorm2d layers across ranks inside the block (or not)."""
    layers = [m for m in module.modules() if isinstance(m, SyncedBatchNorm2d)]
    before = [m.synced for m in layers]
    for m in layers:
        m.synced = on
    try:
        yield
    finally:
        for m, was in zip(layers, before, strict=True):
            m.synced = was

"""One sub-batch's gradient under a chosen arithmetic: how the GPU checks compare devices.

The same model copy, targets and augmented images give the gradient in float64 on the CPU (the
reference) and in float32 or bf16 on any device; their cosine says how far an arithmetic moves a
training step (docs/numerics.md, benchmarks/gpu_diagnose.py, tests/training/test_cuda_training.py).
"""

from __future__ import annotations

import copy

import torch

from gatcluster.model import GATCluster
from gatcluster.training.losses import GATClusterLoss
from gatcluster.training.passes import autocast_for, model_input


def sub_batch_gradient(
    model: GATCluster,
    loss_fn: GATClusterLoss,
    x: torch.Tensor,
    targets: list[torch.Tensor],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
    amp: bool = False,
) -> torch.Tensor:
    """The first head's loss gradient of a copy of `model` (train mode) on images `x` against
    `targets` (balanced, sharpened, relation labels), all parameters flattened, float64, on the CPU."""
    copied = copy.deepcopy(model).to(device, dtype)
    copied = copied.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    copied.train()
    with autocast_for(device, amp):
        out = copied.forward_heads(model_input(x.to(device, dtype), channels_last))[0]
    given = [t.to(device, dtype) if t.is_floating_point() else t.to(device) for t in targets]
    loss, _ = loss_fn(out.probs, out.att_probs, *given)
    loss.backward()
    return torch.cat([p.grad.detach().double().cpu().flatten() for p in copied.parameters()])

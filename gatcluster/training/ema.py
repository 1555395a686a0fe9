"""An exponential-moving-average (EMA) copy of a network, for stable targets.

The copy follows the trained network slowly: after each optimizer step every parameter becomes
decay · copy + (1 − decay) · trained (mean teacher, BYOL, DINO). Buffers (BatchNorm statistics)
are copied as they are; the trainer re-estimates them on clean images when that is on.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_copy(model: nn.Module) -> nn.Module:
    """A detached deep copy of `model` that takes no gradients."""
    teacher = copy.deepcopy(model)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher ← decay · teacher + (1 − decay) · student for parameters; buffers copied."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)

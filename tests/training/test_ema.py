"""The EMA copy: a detached deep copy, updated by the exponential-moving-average formula."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gatcluster.training.ema import ema_copy, ema_update


def hand_made() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0]]))
        model[0].bias.fill_(0.5)
    return model


def test_copy_is_detached_and_independent():
    student = hand_made()
    teacher = ema_copy(student)
    assert all(not p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        student[0].weight.add_(1.0)
    assert teacher[0].weight.tolist() == [[1.0, -2.0]]


def test_update_is_decay_times_copy_plus_rest_times_trained():
    student = hand_made()
    teacher = ema_copy(student)
    with torch.no_grad():
        student[0].weight.copy_(torch.tensor([[3.0, 2.0]]))
        student[0].bias.fill_(-0.5)
        student[1].running_mean.fill_(7.0)
    ema_update(teacher, student, decay=0.75)
    # 0.75 · [1, −2] + 0.25 · [3, 2] = [1.5, −1]; 0.75 · 0.5 + 0.25 · (−0.5) = 0.25
    assert teacher[0].weight[0].tolist() == pytest.approx([1.5, -1.0])
    assert teacher[0].bias.item() == pytest.approx(0.25)
    assert teacher[1].running_mean.item() == 7.0  # buffers are copied, not averaged
    ema_update(teacher, student, decay=0.0)
    assert teacher[0].weight.tolist() == [[3.0, 2.0]]

"""A training run stopped inside an iteration (as Ctrl-C would) and resumed from its checkpoint,
beside the same run uninterrupted: the shape shared by the resume tests."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from gatcluster.config.params import Params
from gatcluster.training.checkpoint import load_checkpoint
from gatcluster.training.fit import FitResult, fit


class Interrupt(KeyboardInterrupt):
    """Stands for Ctrl-C inside training: a KeyboardInterrupt, as Ctrl-C raises (an Exception from
    the log callback is a tracking store that refused, after which that iteration is kept)."""


class Interrupted(NamedTuple):
    whole: FitResult  # the run uninterrupted
    checkpoint: dict  # what the stopped run left
    resumed: FitResult  # the stopped run resumed from it


def stop_and_resume(params: Params, images: torch.Tensor, tmp_path: Path, stop_at: int) -> Interrupted:
    """Train whole; train again, stopped when iteration `stop_at` logs; resume that run."""
    whole = fit(params, images, checkpoint=tmp_path / "whole" / "last.pt")

    def stop(step, metrics):
        if step == stop_at:
            raise Interrupt

    ckpt = tmp_path / "stopped" / "last.pt"
    with pytest.raises(Interrupt):
        fit(params, images, log_fn=stop, checkpoint=ckpt)
    checkpoint = load_checkpoint(ckpt)
    return Interrupted(whole, checkpoint, fit(params, images, checkpoint=ckpt))

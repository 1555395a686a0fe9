"""The fixed cases that test_distributed.py runs in one process and distributed_worker.py in two."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params
from gatcluster.data.views import clean_view
from gatcluster.training.distributed import Ranks
from gatcluster.training.losses import Targets
from gatcluster.training.streams import large_batch_indices
from gatcluster.training.trainer import Trainer

LARGE_BATCH, SUB_BATCH = 200, 32
CPU = torch.device("cpu")


@contextmanager
def float64() -> Iterator[None]:
    """Models and clean views in float64 inside the block."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def bn_case() -> tuple[torch.Tensor, torch.Tensor]:
    """A batch for BatchNorm2d (8 images, 3 channels, offset so that the mean matters) and a loss weight."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 5, 5, generator=gen) * 2.0 + 3.0
    return x, torch.randn(8, 3, 5, 5, generator=gen)


def trainer_for(
    images: torch.Tensor, ranks: Ranks, device: torch.device = CPU, sync_batchnorm: bool = True
) -> tuple[Trainer, torch.Tensor]:
    """A trainer on digits (amp off) and its iteration-0 large batch."""
    overrides = {
        "data.source": "digits",
        "train.device": device.type,
        "train.large_batch": LARGE_BATCH,
        "train.sub_batch": SUB_BATCH,
        "train.amp": False,
        "train.processes": ranks.world_size,
        "experimental.sync_batchnorm": sync_batchnorm,
    }
    trainer = Trainer(replace_params(Params(), overrides), images, device, ranks)
    idx = large_batch_indices(len(images), LARGE_BATCH, 0, 0)
    return trainer, trainer.images[idx]


def step_case(trainer: Trainer, batch: torch.Tensor, targets: Targets) -> dict[str, torch.Tensor]:
    """The gradient of one optimizer step on the first SUB_BATCH clean images of `batch`.

    Run under torch.set_default_dtype(torch.float64) (see `float64`), so that rounding cannot hide
    a wrong sum: this loss's gradient changes by 5 % between 1 and 2 CPU threads in float32.
    """
    idx = torch.arange(SUB_BATCH, device=trainer.device)
    trainer.model.train()
    trainer.optimizer_step(clean_view(batch[idx], True), [targets], idx)
    return {name: p.grad.clone() for name, p in trainer.model.named_parameters()}

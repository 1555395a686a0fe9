"""sub_batch_gradient: the reference it gives is float64 and repeatable, and float32 NCHW on the CPU
lands on it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset
from gatcluster.training.gradient_check import sub_batch_gradient
from gatcluster.training.streams import AUG_VIEW, derived_generator
from gatcluster.training.trainer import Trainer

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def step_case(digits_dataset):
    images = prepare_images(fit_dataset(digits_dataset, 32).images, 32, True)
    overrides = {"data.source": "digits", "train.device": "cpu", "train.large_batch": 256, "train.amp": False}
    trainer = Trainer(replace_params(Params(), overrides), images, CPU)
    batch = trainer.large_batch(0)
    targets = [t[:64] for t in trainer.compute_targets(batch, 0)[0]]
    x = trainer.augment(batch, derived_generator(0, 0, AUG_VIEW))[:64]
    return trainer, x, targets


def test_the_float64_reference_repeats_and_leaves_the_model_alone(step_case):
    trainer, x, targets = step_case
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    first = sub_batch_gradient(trainer.model, trainer.loss_fn, x, targets, CPU, torch.float64)
    second = sub_batch_gradient(trainer.model, trainer.loss_fn, x, targets, CPU, torch.float64)
    assert first.dtype == torch.float64 and torch.equal(first, second)
    assert all(torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())
    assert all(p.grad is None for p in trainer.model.parameters())


def test_float32_nchw_on_the_cpu_lands_on_the_reference(step_case):
    trainer, x, targets = step_case
    reference = sub_batch_gradient(trainer.model, trainer.loss_fn, x, targets, CPU, torch.float64)
    single = sub_batch_gradient(trainer.model, trainer.loss_fn, x, targets, CPU, torch.float32)
    assert F.cosine_similarity(single, reference, dim=0) > 0.999

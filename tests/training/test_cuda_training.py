"""CUDA training computes what the CPU computes (docs/numerics.md); skipped without a CUDA GPU."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F

from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset
from gatcluster.training.fit import fit
from gatcluster.training.gradient_check import sub_batch_gradient
from gatcluster.training.streams import AUG_VIEW, derived_generator
from gatcluster.training.trainer import Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(scope="module")
def mnist_images(mnist5k_dataset) -> torch.Tensor:
    return prepare_images(fit_dataset(mnist5k_dataset, 32).images, 32, True)


def default_params(**overrides) -> Params:
    return replace_params(Params(), {"seed": 1, "train.checkpoint_every": 0, **overrides})


# bf16 keeps 8 significant bits: at initialisation, where the clusters differ in small output
# differences only, the CPU's own bf16 gradient has cosine 0.94 to float64 (docs/numerics.md).
@pytest.mark.parametrize(("amp", "least_cosine"), [(False, 0.99), (True, 0.9)])
def test_one_step_gradient_on_cuda_matches_a_float64_cpu_reference(mnist_images, amp, least_cosine):
    trainer = Trainer(default_params(**{"train.device": "cpu", "train.amp": False}), mnist_images, CPU)
    batch = trainer.large_batch(0)
    targets = [t[:128] for t in trainer.compute_targets(batch, 0)[0]]
    x = trainer.augment(batch, derived_generator(1, 0, AUG_VIEW))[:128]
    model, loss_fn = trainer.model, trainer.loss_fn
    reference = sub_batch_gradient(model, loss_fn, x, targets, CPU, torch.float64)
    on_cuda = sub_batch_gradient(model, loss_fn, x, targets, CUDA, torch.float32, True, amp)
    assert F.cosine_similarity(on_cuda, reference, dim=0) >= least_cosine


@pytest.mark.parametrize("amp", [False, True])
def test_recorded_steps_train_as_eager_steps(mnist_images, amp):
    def trained(graphs: bool) -> tuple[Trainer, list[float]]:
        # Three iterations: the cosine rate falls at each one, which a recorded step must read.
        overrides = {"train.device": "cuda", "train.amp": amp, "train.iterations": 3}
        overrides["experimental.cuda_graphs"] = graphs
        trainer = Trainer(default_params(**overrides), mnist_images, CUDA)
        return trainer, [trainer.run_iteration(i)["loss/total"] for i in range(3)]

    graphed, graphed_losses = trained(True)
    eager, eager_losses = trained(False)
    assert graphed.graphed_step.graph is not None and eager.graphed_step is None
    # 42 steps, all but three warm-up steps replayed; Adam's bias corrections differ in rounding
    # (float32 on the device for recorded steps), and cuDNN's backward is not deterministic.
    assert graphed_losses == pytest.approx(eager_losses, rel=0.02, abs=0.02)
    weights = [torch.cat([p.detach().flatten() for p in t.model.parameters()]) for t in (graphed, eager)]
    assert F.cosine_similarity(*weights, dim=0) >= 0.999


class Stop(KeyboardInterrupt):
    """Stands for Ctrl-C after an iteration logs (before its checkpoint is written): a
    KeyboardInterrupt, as Ctrl-C raises (an Exception from the log callback keeps that iteration)."""


def test_recording_and_eager_runs_resume_each_others_checkpoints(mnist_images, tmp_path):
    # torch loads Adam's step counts where the saved run kept them: the CPU for eager steps, the
    # GPU for recorded (capturable) ones; each kind of run must step from the other's checkpoint.
    params = default_params(**{"train.device": "cuda", "train.iterations": 3, "train.checkpoint_every": 1})
    checkpoint, logged = tmp_path / "last.pt", []

    def run(graphs: bool, stop_at: int | None):
        def stop(step, metrics):
            logged.append((graphs, step, metrics["loss/total"]))
            if step == stop_at:
                raise Stop

        run_params = replace_params(params, {"experimental.cuda_graphs": graphs})
        return fit(run_params, mnist_images, log_fn=stop, checkpoint=checkpoint)

    with pytest.raises(Stop):
        run(False, stop_at=2)  # leaves iteration 1's checkpoint
    with pytest.raises(Stop):
        run(True, stop_at=3)  # resumes it recording (iterations 2, 3), leaves iteration 2's
    run(False, stop_at=None)  # resumes that eagerly: iteration 3
    assert [(graphs, step) for graphs, step, _ in logged] == [
        (False, 1),
        (False, 2),
        (True, 2),
        (True, 3),
        (False, 3),
    ]
    assert all(math.isfinite(loss) for _, _, loss in logged)


@contextmanager
def cpu_threads(count: int) -> Iterator[None]:
    """torch's CPU thread count set to `count` for the block (the suite runs one thread per process)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_thirty_cuda_iterations_reach_the_cpu_accuracy(mnist_images, mnist5k_dataset):
    def monitored_acc(device: str) -> float:
        params = default_params(**{"train.device": device, "train.iterations": 30, "train.eval_every": 30})
        return fit(params, mnist_images, mnist5k_dataset.labels).history[-1]["acc"]

    # The CPU reference need not repeat bit for bit here, only be the CPU's result: a GPU machine's
    # many cores keep its 30 iterations inside the GPU session's time for this part.
    with cpu_threads(min(8, os.cpu_count() or 1)):
        cpu_acc = monitored_acc("cpu")
    assert monitored_acc("cuda") >= cpu_acc - 0.05

"""Data-parallel training: two real torchrun processes (gloo) against one process, on the same cases.

The worker (distributed_worker.py) computes in two processes what these tests compute in one:
synced BatchNorm on fixed data, the iteration-0 targets of a digits run, and the gradient of one
optimizer step from the same targets. Equal up to float rounding is the claim; how close each is,
and why not bit-identical, is said at each assertion.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset
from gatcluster.training.distributed import (
    SINGLE_PROCESS,
    Ranks,
    SyncedBatchNorm2d,
    batchnorm_synced,
    gather_rows,
    share,
    use_synced_batchnorm,
)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from distributed_cases import bn_case, float64, step_case, trainer_for  # noqa: E402

REPO = HERE.parents[1]


@pytest.fixture(scope="module")
def one_process(digits_dataset) -> dict:
    """The cases in this process: plain BatchNorm2d, targets and one step's gradient."""
    x, weight = bn_case()
    bn = nn.BatchNorm2d(x.shape[1])
    x = x.clone().requires_grad_(True)
    y = bn(x)
    (y * weight).sum().backward()
    images = prepare_images(fit_dataset(digits_dataset, 32).images, 32, True)
    with float64():
        trainer, batch = trainer_for(images, SINGLE_PROCESS)
        targets = trainer.compute_targets(batch, 0)[0]
        trainer_again, _ = trainer_for(images, SINGLE_PROCESS)  # fresh weights for the step
        grads = step_case(trainer_again, batch, targets)
    return {
        "bn": {
            "y": y.detach(),
            "x_grad": x.grad,
            "weight_grad": bn.weight.grad,
            "running_mean": bn.running_mean,
            "running_var": bn.running_var,
        },
        "targets": targets,
        "grads": grads,
    }


def run_worker(out: Path, targets: list[torch.Tensor], device: str) -> dict:
    """distributed_worker.py in two torchrun processes on `device` (cpu: gloo, cuda: NCCL)."""
    torch.save([t.cpu() for t in targets], out / "targets.pt")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "torchrun"),
            "--standalone",
            "--nproc-per-node=2",
            str(HERE / "distributed_worker.py"),
            str(out),
            str(out / "targets.pt"),
            device,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out / "rank0.pt")


@pytest.fixture(scope="module")
def two_processes(one_process, tmp_path_factory) -> dict:
    """The same cases in two torchrun processes on the CPU, stepping from the one-process targets."""
    return run_worker(tmp_path_factory.mktemp("ddp"), list(one_process["targets"]), "cpu")


def test_synced_batchnorm_over_two_ranks_equals_batchnorm_over_the_whole_batch(one_process, two_processes):
    one, two = one_process["bn"], two_processes["bn"]
    # float64 sums on two ranks vs torch's float32 kernel on one: equal to float32 rounding.
    torch.testing.assert_close(two["y"], one["y"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(two["x_grad"], one["x_grad"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(two["weight_grad"], one["weight_grad"], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(two["running_mean"], one["running_mean"], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(two["running_var"], one["running_var"], atol=1e-6, rtol=1e-5)


def test_two_ranks_compute_the_one_process_targets(one_process, two_processes):
    one, two = one_process["targets"], two_processes["targets"]
    # Each rank predicts half of the large batch (BatchNorm refit synced), rank 0 computes the
    # targets from all of it. In float64 only the summation order differs; the targets are stored
    # in float32, where that leaves them equal, and k-means then finds the same relations.
    torch.testing.assert_close(two[0], one.balanced, atol=1e-6, rtol=0)
    torch.testing.assert_close(two[1], one.sharpened, atol=1e-6, rtol=0)
    assert torch.equal(two[2], one.relation_labels)


def test_a_two_rank_step_has_the_one_process_gradient(one_process, two_processes):
    one, two = one_process["grads"], two_processes["grads"]
    assert one.keys() == two.keys()
    for name in one:
        # Gathered outputs give every rank the whole sub-batch's loss; the gather's backward sums
        # the ranks' gradients and DDP's mean divides by 2: the one-process gradient, in float64
        # up to summation order.
        torch.testing.assert_close(two[name], one[name], rtol=1e-7, atol=1e-9, msg=name)


def test_without_synced_batchnorm_a_step_normalises_each_share_alone(one_process, two_processes):
    one, unsynced = one_process["grads"], two_processes["grads_unsynced"]
    # train.sync_batchnorm false: each rank's BatchNorm sees only its half of the sub-batch, so the
    # step is no longer the one-process step (the synced one above is, to 1e-7).
    errors = [float((unsynced[k] - one[k]).norm() / one[k].norm()) for k in one if one[k].norm() > 1e-6]
    assert max(errors) > 1e-3


def test_one_process_needs_no_process_group():
    rows = torch.arange(6.0)
    assert share(rows, SINGLE_PROCESS) is rows
    assert gather_rows(rows, SINGLE_PROCESS) is rows
    assert share(rows, Ranks(1, 3)).tolist() == [2.0, 3.0]


def test_synced_batchnorm_is_plain_batchnorm_outside_the_synced_block():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    use_synced_batchnorm(model)
    assert isinstance(model[1], SyncedBatchNorm2d)
    plain = nn.BatchNorm2d(2)
    plain.load_state_dict(model[1].state_dict())
    x = torch.randn(4, 2, 3, 3)
    torch.testing.assert_close(model[1](x), plain(x), rtol=0, atol=0)
    with batchnorm_synced(model):
        assert model[1].synced
    assert not model[1].synced


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs (NCCL)")
def test_two_gpus_with_nccl_take_the_one_process_step(one_process, tmp_path):
    two = run_worker(tmp_path, list(one_process["targets"]), "cuda")
    # float64 on the GPUs vs the CPU: other kernels, so equal to 1e-6 rather than 1e-7.
    torch.testing.assert_close(two["bn"]["y"], one_process["bn"]["y"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(two["targets"][0], one_process["targets"].balanced, atol=1e-5, rtol=0)
    for name, grad in one_process["grads"].items():
        torch.testing.assert_close(two["grads"][name], grad, rtol=1e-6, atol=1e-8, msg=name)


def test_rows_that_do_not_split_evenly_are_refused_not_dropped():
    from gatcluster.training.distributed import Ranks, share

    ranks = Ranks(rank=1, world_size=2, local_rank=1)
    assert share(torch.arange(6), ranks).tolist() == [3, 4, 5]
    with pytest.raises(ValueError, match="7 rows do not split evenly over 2 training processes"):
        share(torch.arange(7), ranks)

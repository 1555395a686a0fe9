"""One rank of the distributed-training checks in test_distributed.py, started by a real torchrun.

    torchrun --standalone --nproc-per-node 2 tests/training/distributed_worker.py OUT_DIR TARGETS_FILE [cuda]

Rank 0 writes OUT_DIR/rank0.pt: a synced-BatchNorm forward/backward on fixed data, the iteration-0
targets of a small digits run, and the gradient of one optimizer step taken with the targets in
TARGETS_FILE (those of a one-process run, so both runs step from the same targets), the last two
in float64. The test computes the same with one process and compares.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from gatcluster.data.bundled import load_digits
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset
from gatcluster.training.distributed import (
    Ranks,
    SyncedBatchNorm2d,
    batchnorm_synced,
    share,
    start_process_group,
    stop_process_group,
)
from gatcluster.training.losses import Targets

sys.path.insert(0, str(Path(__file__).parent))
from distributed_cases import bn_case, float64, step_case, trainer_for  # noqa: E402


def synced_bn(ranks: Ranks, device: torch.device) -> dict:
    """Forward + backward of SyncedBatchNorm2d on this rank's share of the fixed case."""
    x, weight = (t.to(device) for t in bn_case())
    bn = SyncedBatchNorm2d(x.shape[1]).to(device)
    x_share = share(x, ranks).clone().requires_grad_(True)
    with batchnorm_synced(bn):
        y = bn(x_share)
    (y * share(weight, ranks)).sum().backward()
    ys = [torch.empty_like(y) for _ in range(ranks.world_size)]
    grads = [torch.empty_like(x_share) for _ in range(ranks.world_size)]
    dist.all_gather(ys, y.detach())
    dist.all_gather(grads, x_share.grad)
    weight_grad = bn.weight.grad.clone()
    dist.all_reduce(weight_grad)  # each rank holds its share's part of d/dweight
    out = {"y": torch.cat(ys), "x_grad": torch.cat(grads), "weight_grad": weight_grad}
    return {
        **{k: v.cpu() for k, v in out.items()},
        "running_mean": bn.running_mean.cpu(),
        "running_var": bn.running_var.cpu(),
    }


def main() -> None:
    out_dir, targets_file = Path(sys.argv[1]), Path(sys.argv[2])
    torch.set_num_threads(1)
    ranks = Ranks(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    device = torch.device("cuda", ranks.local_rank) if sys.argv[3:] == ["cuda"] else torch.device("cpu")
    start_process_group(device, ranks)
    result = {"bn": synced_bn(ranks, device)}
    images = prepare_images(fit_dataset(load_digits(), 32).images, 32, True)
    with float64():
        trainer, batch = trainer_for(images, ranks, device)
        result["targets"] = [t.cpu() for t in trainer.compute_targets(batch, 0)[0]]
        given = Targets(*(t.to(device) for t in torch.load(targets_file)))
        grads = step_case(trainer, batch, given)
        result["grads"] = {k: v.cpu() for k, v in grads.items()}
        unsynced, _ = trainer_for(images, ranks, device, sync_batchnorm=False)
        grads = step_case(unsynced, batch, given)
        result["grads_unsynced"] = {k: v.cpu() for k, v in grads.items()}
    if ranks.is_main:
        torch.save(result, out_dir / "rank0.pt")
    stop_process_group()


if __name__ == "__main__":
    main()

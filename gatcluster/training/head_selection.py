"""Label-free choice of one head among several (`experimental.num_heads`): the lowest total loss.

Every K-cluster head is scored with the training loss (its own targets, computed from its clean
predictions) on one fixed batch of the data set in one fixed augmented view, in eval mode. The
head that fits its own self-supervised objective best is kept, as IIC keeps its lowest-loss
sub-head. Labels play no part.
"""

from __future__ import annotations

import torch

from gatcluster.model import GATCluster
from gatcluster.training.losses import GATClusterLoss, Targets
from gatcluster.training.passes import autocast_for, model_input


def head_losses(
    model: GATCluster,
    view: torch.Tensor,
    targets: list[Targets],
    loss_fn: GATClusterLoss,
    sub_batch: int,
    amp: bool = False,
    channels_last: bool = False,
) -> list[float]:
    """Mean total loss of each K-cluster head over consecutive sub-batches of `view` (eval mode).

    `view` is a float batch on the model's device; `targets[h]` are head h's targets for it.
    """
    model.eval()
    device = view.device
    sums = [0.0] * model.num_heads
    steps = 0
    with torch.no_grad(), autocast_for(device, amp):
        for start in range(0, len(view) - sub_batch + 1, sub_batch):
            idx = torch.arange(start, start + sub_batch, device=device)
            outs = model.forward_heads(model_input(view[idx], channels_last))
            for h in range(model.num_heads):
                t = targets[h]
                total, _ = loss_fn(
                    outs[h].probs,
                    outs[h].att_probs,
                    t.balanced[idx],
                    t.sharpened[idx],
                    t.relation_labels[idx],
                )
                sums[h] += float(total)
            steps += 1
    return [s / steps for s in sums]


def best_head(losses: list[float]) -> int:
    """Index of the lowest loss (the first one on a tie)."""
    return min(range(len(losses)), key=lambda h: losses[h])

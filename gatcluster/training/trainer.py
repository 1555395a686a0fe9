"""The two-step, memory-efficient GATCluster trainer (docs/method.md §4).

One outer iteration: draw a large batch L, compute dataset-level targets on its clean view
(eval mode, no gradients, in chunks), then train on R shuffles of L in sub-batches of B augmented
images. Every random draw comes from a generator derived from (seed, iteration), so a run resumed
from a checkpoint ends bit-identical to an uninterrupted one on the CPU.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import torch

from gatcluster.config.params import Params, params_to_dict
from gatcluster.data.model_images import ModelImages, RowPrefetch
from gatcluster.data.views import augmented_view
from gatcluster.evaluation.metrics import cluster_scores
from gatcluster.model import GATCluster
from gatcluster.training.checkpoint import restore_rng_state, rng_state
from gatcluster.training.distributed import (
    SINGLE_PROCESS,
    Ranks,
    batchnorm_synced,
    broadcast_from_main,
    data_parallel,
    gather_rows,
    gather_rows_with_grad,
    share,
    use_synced_batchnorm,
)
from gatcluster.training.head_selection import best_head, head_losses
from gatcluster.training.losses import (
    GATClusterLoss,
    Targets,
    compute_targets,
    kmeans_points,
    neighbour_mean,
    neighbour_ranking,
    relation_points,
    uses_feature_points,
)
from gatcluster.training.passes import (
    BatchNormStats,
    autocast_for,
    batchnorm_stats,
    chunked_head_probs,
    chunked_probs_and_middle,
    load_batchnorm_stats,
    model_input,
    preserved_batchnorm_stats,
    reestimate_batchnorm,
)
from gatcluster.training.resume import code_digest
from gatcluster.training.step_graph import (
    GraphedStep,
    adam_for,
    reapply_adam_settings,
    records_steps,
    set_lr,
)
from gatcluster.training.streams import (
    AUG_VIEW,
    KMEANS,
    SELECTION,
    SHUFFLE,
    derived_generator,
    derived_seed,
    large_batch_indices,
    lr_at,
    refit_order,
    seed_everything,
)

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


def target_diagnostics(probs: torch.Tensor, targets: Targets, num_clusters: int) -> dict[str, float]:
    """Label-free health signs of a target pass: the guard fired; the largest clean cluster's share."""
    sizes = torch.bincount(probs.argmax(dim=1), minlength=num_clusters)
    return {
        "targets/guard_fired": float(targets.relation_labels.max().item() >= num_clusters),
        "targets/largest_cluster": sizes.max().item() / len(probs),
    }


def empty_targets(rows: int, clusters: int, device: torch.device) -> Targets:
    """Room for one head's targets (rank 0 broadcasts the values)."""
    return Targets(
        torch.empty(rows, clusters, device=device),
        torch.empty(rows, clusters, device=device),
        torch.empty(rows, dtype=torch.int64, device=device),
    )


class Trainer:
    """Holds the model, optimizer and loss of one run; `fit` drives it."""

    def __init__(
        self,
        params: Params,
        images: torch.Tensor | ModelImages,
        device: torch.device,
        ranks: Ranks = SINGLE_PROCESS,
        data_id: str | None = None,
    ) -> None:
        self.params, self.cfg, self.device, self.ranks = params, params.train, device, ranks
        self.data_id = data_id  # the data set's checksum: a checkpoint of other data is not resumed
        self.xcfg = params.experimental
        self.seed = params.seed  # of initialisation and of every training stream
        # uint8 (N, C, S, S), the model-input-sized data set: on the device when it is a tensor,
        # read from disk batch by batch when it is ModelImages (prefetched in the background on CUDA).
        self.images = images if isinstance(images, ModelImages) else images.to(device)
        self.prefetch = (
            RowPrefetch(images) if isinstance(images, ModelImages) and device.type == "cuda" else None
        )
        self.grayscale = params.data.grayscale
        seed_everything(self.seed)
        in_channels = 1 if self.grayscale else 3
        self.model = GATCluster(params.model, in_channels, self.xcfg).to(device)
        if self.cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if ranks.distributed:
            use_synced_batchnorm(self.model)
        # What an optimizer step calls: every head, under DDP when several processes train.
        self.forward_heads = (
            data_parallel(self.model, device) if ranks.distributed else self.model.forward_heads
        )
        if self.cfg.compile:  # the same weights; only the optimizer step's forward/backward is compiled
            self.forward_heads = torch.compile(self.forward_heads)
        self.loss_fn = GATClusterLoss(vars(self.cfg.loss_weights))
        fp16 = self.cfg.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler(device.type, enabled=fp16)
        self.records = records_steps(
            self.xcfg.cuda_graphs, device, ranks.distributed, self.cfg.compile, self.scaler.is_enabled()
        )
        self.optimizer = adam_for(self.model.parameters(), self.cfg.lr, device, self.records)
        self.graphed_step = GraphedStep(self.optimizer_step) if self.records else None
        # The output model's BatchNorm statistics refitted to the data set for its current weights:
        # the last iteration's monitoring refits them, and the final refit would repeat that work.
        self.refitted: BatchNormStats | None = None

    @property
    def output_model(self) -> GATCluster:
        """The network that computes targets and is returned."""
        return self.model

    def head_targets(
        self, batch: torch.Tensor, seed: int, where: str, amp: bool, ranks: Ranks = SINGLE_PROCESS
    ) -> tuple[list[torch.Tensor], list[Targets]]:
        """Clean probabilities and targets of every head for `batch` (eval mode, in chunks).

        With several `ranks`, each predicts its share of `batch`; rank 0 computes the targets from
        all predictions and every rank receives them. Non-finite predictions stop training with a
        message naming `where` they appeared.
        """
        cfg, xcfg, model = self.cfg, self.xcfg, self.output_model
        features = uses_feature_points(xcfg.relations, xcfg.neighbours)
        probs, middle = chunked_probs_and_middle(
            model,
            share(batch, ranks),
            xcfg.target_chunk,
            self.grayscale,
            self.device,
            amp,
            cfg.channels_last,
            middle=features,
            on_device=True,  # targets, relation points and k-means are computed where they are
        )
        if ranks.distributed:
            probs = [gather_rows(p, ranks) for p in probs]
            if features:
                middle = gather_rows(middle, ranks)
        if not all(torch.isfinite(p).all() for p in probs):
            raise TrainingDiverged(
                f"non-finite predictions in {where}. "
                "Lower train.lr, or check the input data for NaNs; the last checkpoint is kept."
            )
        sizes = [self.params.model.num_clusters] * model.num_heads
        sizes += [xcfg.overcluster] * (len(probs) - model.num_heads)
        if not ranks.is_main:  # filled in by rank 0's broadcast
            targets = [empty_targets(len(p), p.shape[1], self.device) for p in probs]
        else:
            points = relation_points(middle, seed) if features else None
            nearest = neighbour_ranking(points, xcfg.relations, xcfg.neighbours)
            # Targets from probabilities averaged over feature neighbours: nearest neighbours share
            # the class far more often than k-means clusters do (docs/method.md §3). The returned
            # probabilities stay the network's own, for the diagnostics of its clusters.
            if xcfg.neighbours > 0:
                smoothed = [neighbour_mean(p, nearest[:, : xcfg.neighbours]) for p in probs]
            else:
                smoothed = probs
            space = {k: kmeans_points(xcfg.relations, points, nearest, k) for k in set(sizes)}
            targets = [
                compute_targets(
                    p, k, xcfg.kmeans_n_init, (seed + h) % (2**31), xcfg.guard_min_ratio, space[k]
                )
                for h, (p, k) in enumerate(zip(smoothed, sizes, strict=True))
            ]
        broadcast_from_main([t for tg in targets for t in tg], ranks)
        return probs, targets

    def compute_targets(self, batch: torch.Tensor, iteration: int) -> list[Targets]:
        """Step 1: clean-view targets of the large batch for every head (eval mode, no gradients)."""
        cfg, ranks = self.cfg, self.ranks
        if self.xcfg.bn_reestimate:
            with batchnorm_synced(self.output_model, ranks.distributed):
                reestimate_batchnorm(
                    self.output_model,
                    share(batch, ranks),
                    self.xcfg.target_chunk,
                    self.grayscale,
                    self.device,
                    cfg.channels_last,
                    cfg.amp,
                )
        seed = derived_seed(self.seed, iteration, KMEANS) % (2**31)
        where = f"the target pass of iteration {iteration + 1}"
        probs, targets = self.head_targets(batch, seed, where, cfg.amp, ranks)
        self.target_stats = target_diagnostics(probs[0], targets[0], self.params.model.num_clusters)
        return targets

    def augment(self, batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The augmented view (L, C, S, S) of the large batch, drawn from `gen`."""
        return augmented_view(batch, self.params.augment, self.grayscale, gen)

    def train_on(self, batch: torch.Tensor, targets: list[Targets], iteration: int) -> dict[str, float]:
        """Step 2: R repeats × ⌊L/B⌋ augmented sub-batches, one Adam step each; mean losses."""
        cfg = self.cfg
        self.refitted = None  # the weights change
        aug_gen = derived_generator(self.seed, iteration, AUG_VIEW)
        shuffle_gen = derived_generator(self.seed, iteration, SHUFFLE)
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        steps = 0
        view = self.augment(batch, aug_gen)  # the whole view on every rank: equal streams
        step = self.step_on(view, targets)
        for _ in range(cfg.repeats):
            order = torch.randperm(len(batch), generator=shuffle_gen).to(self.device)
            for start in range(0, len(order) - cfg.sub_batch + 1, cfg.sub_batch):
                terms = step(order[start : start + cfg.sub_batch])
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value
                steps += 1
        return {key: float(value) / steps for key, value in sums.items()}

    def step_on(
        self, view: torch.Tensor, targets: list[Targets]
    ) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
        """One optimizer step on rows `idx` of `view`, as a function of `idx`: replayed from a CUDA
        graph when steps are recorded (`step_graph.records_steps`), else eager."""
        if self.graphed_step is None:
            return lambda idx: self.optimizer_step(view[idx], targets, idx)
        self.graphed_step.load(view, targets)
        return self.graphed_step

    def optimizer_step(
        self, x: torch.Tensor, targets: list[Targets], idx: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """One Adam step on one augmented sub-batch, every head's loss summed; detached terms.

        With several ranks, each forwards its share of `x` and the outputs are gathered, so every
        rank computes the loss of the whole sub-batch (module docstring of distributed.py).
        `loss/<term>` are means over the heads; `loss/head<h>` each head's total (several heads).
        """
        ranks = self.ranks
        with batchnorm_synced(self.model, ranks.distributed and self.xcfg.sync_batchnorm):
            return self.adam_step(x, targets, idx)

    def adam_step(
        self, x: torch.Tensor, targets: list[Targets], idx: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The step itself; `optimizer_step` sets the BatchNorm synchronisation around it."""
        ranks = self.ranks
        with autocast_for(self.device, self.cfg.amp):
            outs = self.forward_heads(model_input(share(x, ranks), self.cfg.channels_last))
        totals, head_terms = [], []
        for out, t in zip(outs, targets, strict=True):
            probs, att_probs = (gather_rows_with_grad(o, ranks) for o in (out.probs, out.att_probs))
            loss, terms = self.loss_fn(
                probs, att_probs, t.balanced[idx], t.sharpened[idx], t.relation_labels[idx]
            )
            totals.append(loss)
            head_terms.append(terms)
        total = totals[0]
        for loss in totals[1:]:
            total = total + loss
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        logged = {"loss/total": total.detach()}
        for key in head_terms[0]:
            values = [t[key].detach() for t in head_terms]
            logged[f"loss/{key}"] = values[0] if len(values) == 1 else torch.stack(values).mean()
        if len(totals) > 1:
            logged.update({f"loss/head{h}": loss.detach() for h, loss in enumerate(totals)})
        return logged

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Images `idx` of the data set, on the device."""
        if isinstance(self.images, ModelImages):
            return self.images[idx].to(self.device)
        return self.images[idx.to(self.device)]

    def large_batch_indices(self, iteration: int) -> torch.Tensor:
        """The data set rows of iteration `iteration`'s large batch (from the seed alone)."""
        return large_batch_indices(len(self.images), self.cfg.large_batch, iteration, self.seed)

    def large_batch(self, iteration: int) -> torch.Tensor:
        """The large batch of `iteration` on the device; on CUDA the next one is read meanwhile."""
        if self.prefetch is None:
            return self.rows(self.large_batch_indices(iteration))
        batch = self.prefetch.take(self.large_batch_indices(iteration), self.device)
        if iteration + 1 < self.cfg.iterations:
            self.prefetch.start(self.large_batch_indices(iteration + 1))
        return batch

    def run_iteration(self, iteration: int) -> dict[str, float]:
        """One outer iteration: targets on a fresh large batch, then training on it."""
        lr = lr_at(iteration, self.cfg.iterations, self.cfg.lr, self.cfg.lr_schedule)
        set_lr(self.optimizer, lr)
        batch = self.large_batch(iteration)
        losses = self.train_on(batch, self.compute_targets(batch, iteration), iteration)
        if not all(math.isfinite(v) for v in losses.values()):
            raise TrainingDiverged(
                f"non-finite loss in iteration {iteration + 1}: {losses}. "
                "Lower train.lr, or check the input data for NaNs; the last checkpoint is kept."
            )
        return {**losses, **self.target_stats, "lr": lr}

    def end_training(self) -> None:
        """After the last step: free the recorded step (its memory pool and static buffers) and the
        last gradients, which a recorded step keeps in that pool."""
        self.graphed_step = None
        self.optimizer.zero_grad(set_to_none=True)

    def close(self) -> None:
        """Release what the trainer started: the read-ahead thread on CUDA."""
        if self.prefetch is not None:
            self.prefetch.close()

    def finalize(self) -> None:
        """Fit BatchNorm statistics of the output model to the clean data set (when that is on);
        a refit of the same weights is reused (it resets the statistics first, so it is repeatable)."""
        model = self.output_model
        if self.xcfg.bn_reestimate and self.refitted is not None:
            load_batchnorm_stats(model, self.refitted)
        elif self.xcfg.bn_reestimate:
            # In a seeded shuffled order: stores are often sorted by class (class sub-folders,
            # mnist5k), and chunks of one class each measured a variance within that class (the
            # deepest layers' at about 0.6 of the data set's, in a trained mnist5k model).
            order = refit_order(len(self.images), self.seed)
            reestimate_batchnorm(
                model,
                self.images,
                self.xcfg.target_chunk,
                self.grayscale,
                self.device,
                self.cfg.channels_last,
                order=order,
            )  # in float32: the model is used in float32 from here on (evaluation, export)
            self.refitted = batchnorm_stats(model)
        model.eval()

    def head_probs(self) -> list[torch.Tensor]:
        """Clean probabilities of every head of the output model over the whole data set.

        In float32, as the trained model is evaluated and exported.
        """
        return chunked_head_probs(
            self.output_model,
            self.images,
            self.xcfg.target_chunk,
            self.grayscale,
            self.device,
            False,
            self.cfg.channels_last,
        )

    def evaluate(self, labels: np.ndarray) -> dict[str, float]:
        """Monitoring only (never used to select a model): ACC / NMI / ARI on the data set.

        Scores of the first head; with several heads also `acc/head<h>` of each. BatchNorm
        statistics are put back afterwards, so monitoring cannot change training.
        """
        with preserved_batchnorm_stats(self.output_model):
            self.finalize()
            probs = self.head_probs()[: self.output_model.num_heads]
        scores = cluster_scores(probs[0].argmax(1).numpy(), labels)
        metrics = {"acc": scores.acc, "nmi": scores.nmi, "ari": scores.ari}
        if len(probs) > 1:
            metrics.update(
                {f"acc/head{h}": cluster_scores(p.argmax(1).numpy(), labels).acc for h, p in enumerate(probs)}
            )
        return metrics

    def selection_losses(self) -> list[float]:
        """Each K-cluster head's total loss on the run's fixed clean batch and augmented view."""
        model, cfg = self.output_model, self.cfg
        gen = derived_generator(self.params.seed, 0, SELECTION)
        idx = torch.randperm(len(self.images), generator=gen)[: cfg.large_batch]
        batch = self.rows(idx)
        seed = derived_seed(self.params.seed, 0, SELECTION) % (2**31)
        # In float32, as the selected head will be used.
        _, targets = self.head_targets(batch, seed, "the selection pass", amp=False)
        view = augmented_view(batch, self.params.augment, self.grayscale, gen)
        return head_losses(model, view, targets, self.loss_fn, cfg.sub_batch, False, cfg.channels_last)

    def select_head(self) -> list[float]:
        """Keep the K-cluster head with the lowest loss on a fixed clean batch; each head's loss.

        Nothing happens with one head.
        """
        model = self.output_model
        if model.num_heads == 1:
            return []
        losses = self.selection_losses()
        model.keep_head(best_head(losses))
        self.refitted = None  # the other heads' BatchNorm layers went with them
        return losses

    def state(self, iterations_done: int, history: list[dict[str, float]]) -> dict:
        """Everything a resume needs, in weights-only-loadable types."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "iteration": iterations_done,
            "rng": rng_state(),
            "params": params_to_dict(self.params),
            "code": code_digest(),
            "data": self.data_id,
            "seed": self.seed,
            "history": history,
            "scaler": self.scaler.state_dict(),
        }
        return state

    def load_state(self, state: dict) -> None:
        """Restore model, optimizer and RNG states from a checkpoint."""
        self.model.load_state_dict(state["model"])
        self.refitted = None
        self.optimizer.load_state_dict(state["optimizer"])
        reapply_adam_settings(self.optimizer, self.device, self.records)
        if self.records:  # the loaded moments have new addresses: record anew
            self.graphed_step = GraphedStep(self.optimizer_step)
        restore_rng_state(state["rng"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

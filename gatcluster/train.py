"""The two-step, memory-efficient GATCluster trainer (method.md §4).

One outer iteration: draw a large batch L, compute dataset-level targets on its clean view
(eval mode, no gradients, in chunks), then train on R shuffles of L in sub-batches of B augmented
images. Every random draw comes from a generator derived from (seed, iteration), so a run resumed
from a checkpoint ends bit-identical to an uninterrupted one on the CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gatcluster.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from gatcluster.config import Params, params_to_dict
from gatcluster.data.views import augmented_view
from gatcluster.inference import (
    autocast_for,
    chunked_outputs,
    model_input,
    preserved_batchnorm_stats,
    reestimate_batchnorm,
)
from gatcluster.losses import GATClusterLoss, Targets, compute_targets
from gatcluster.metrics import cluster_scores
from gatcluster.model import GATCluster

LogFn = Callable[[int, dict[str, float]], None]
log = logging.getLogger(__name__)

# Purposes of derived random streams: one independent stream each per (seed, iteration).
EPOCH_ORDER, AUG_VIEW, SHUFFLE, KMEANS = range(4)
# Params that do not change what training computes: a checkpoint stays valid across them.
NON_TRAINING_KEYS = {"checkpoint_every", "eval_every", "device"}


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


class TrainingSetupError(ValueError):
    """The params cannot run on this data or machine (too few images, no GPU); says what to change."""


@dataclass
class FitResult:
    """The trained model and what happened while training it."""

    model: GATCluster
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0  # iterations already done in the checkpoint that was resumed
    seconds: float = 0.0


def derived_seed(seed: int, iteration: int, purpose: int) -> int:
    """An independent 63-bit seed for one random stream of one iteration."""
    return int(np.random.SeedSequence([seed, iteration, purpose]).generate_state(2, np.uint64)[0] >> 1)


def derived_generator(seed: int, iteration: int, purpose: int) -> torch.Generator:
    """A CPU torch.Generator seeded for one random stream of one iteration."""
    return torch.Generator().manual_seed(derived_seed(seed, iteration, purpose))


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random (model init and anything outside the derived streams)."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when usable, else CPU; `cuda` without a GPU is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingSetupError("train.device is cuda but no CUDA GPU is usable here: use auto or cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def large_batch_indices(n: int, size: int, iteration: int, seed: int) -> torch.Tensor:
    """Indices of iteration `iteration`'s large batch: the next `size` of seeded epoch permutations.

    With n <= size the large batch is all n images (in that iteration's epoch order).
    """
    if n <= size:
        return torch.randperm(n, generator=derived_generator(seed, iteration, EPOCH_ORDER))
    start, parts, taken = iteration * size, [], 0
    while taken < size:
        epoch, offset = divmod(start + taken, n)
        perm = torch.randperm(n, generator=derived_generator(seed, epoch, EPOCH_ORDER))
        part = perm[offset : offset + size - taken]
        parts.append(part)
        taken += len(part)
    return torch.cat(parts)


def lr_at(iteration: int, total: int, base_lr: float, schedule: str) -> float:
    """Learning rate of an outer iteration: constant, or cosine decay to 0 over `total`."""
    if schedule == "cosine":
        return base_lr * 0.5 * (1 + math.cos(math.pi * iteration / total))
    return base_lr


def training_params(params: Params) -> dict:
    """The params that decide what training computes (for checkpoint compatibility)."""
    raw = params_to_dict(params)
    train = {k: v for k, v in raw["train"].items() if k not in NON_TRAINING_KEYS}
    return {
        "seed": raw["seed"],
        "data": raw["data"],
        "model": raw["model"],
        "train": train,
        "augment": raw["augment"],
    }


def params_digest(params: Params) -> str:
    """A short sha256 of `training_params`: equal digests mean a checkpoint can be resumed."""
    text = json.dumps(training_params(params), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def target_diagnostics(probs: torch.Tensor, targets: Targets, num_clusters: int) -> dict[str, float]:
    """Label-free health signs of a target pass: the guard fired; the largest clean cluster's share."""
    sizes = torch.bincount(probs.argmax(dim=1), minlength=num_clusters)
    return {
        "targets/guard_fired": float(targets.relation_labels.max().item() >= num_clusters),
        "targets/largest_cluster": sizes.max().item() / len(probs),
    }


class Trainer:
    """Holds the model, optimizer and loss of one run; `fit` drives it."""

    def __init__(self, params: Params, images: torch.Tensor, device: torch.device) -> None:
        self.params, self.cfg, self.device = params, params.train, device
        self.images = images.to(device)  # uint8 (N, C, S, S), the model-input-sized data set
        self.grayscale = params.data.grayscale
        seed_everything(params.seed)
        in_channels = 1 if self.grayscale else 3
        self.model = GATCluster(params.model, in_channels).to(device)
        if self.cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.loss_fn = GATClusterLoss(vars(self.cfg.loss_weights))
        fp16 = self.cfg.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler(device.type, enabled=fp16)

    def compute_targets(self, batch: torch.Tensor, iteration: int) -> Targets:
        """Step 1: clean-view targets of the large batch (eval mode, no gradients, in chunks)."""
        cfg = self.cfg
        if cfg.bn_reestimate:
            reestimate_batchnorm(
                self.model, batch, cfg.target_chunk, self.grayscale, self.device, cfg.channels_last
            )
        out = chunked_outputs(
            self.model, batch, cfg.target_chunk, self.grayscale, self.device, cfg.amp, cfg.channels_last
        )
        if not torch.isfinite(out.probs).all():
            raise TrainingDiverged(
                f"non-finite predictions in the target pass of iteration {iteration + 1}. "
                "Lower train.lr, or check the input data for NaNs; the last checkpoint is kept."
            )
        seed = derived_seed(self.params.seed, iteration, KMEANS) % (2**31)
        k = self.params.model.num_clusters
        targets = compute_targets(out.probs, k, cfg.kmeans_n_init, seed, cfg.guard_min_ratio)
        self.target_stats = target_diagnostics(out.probs, targets, k)
        return Targets(*(t.to(self.device) for t in targets))

    def train_on(self, batch: torch.Tensor, targets: Targets, iteration: int) -> dict[str, float]:
        """Step 2: R repeats × ⌊L/B⌋ augmented sub-batches, one Adam step each; mean losses."""
        cfg, aug = self.cfg, self.params.augment
        aug_gen = derived_generator(self.params.seed, iteration, AUG_VIEW)
        shuffle_gen = derived_generator(self.params.seed, iteration, SHUFFLE)
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        steps = 0
        view = augmented_view(batch, aug, self.grayscale, aug_gen)  # (L, C, S, S)
        for repeat in range(cfg.repeats):
            if cfg.resample_aug_per_repeat and repeat > 0:
                view = augmented_view(batch, aug, self.grayscale, aug_gen)
            order = torch.randperm(len(batch), generator=shuffle_gen).to(self.device)
            for start in range(0, len(order) - cfg.sub_batch + 1, cfg.sub_batch):
                idx = order[start : start + cfg.sub_batch]
                terms = self.optimizer_step(view[idx], targets, idx)
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value
                steps += 1
        return {key: float(value) / steps for key, value in sums.items()}

    def optimizer_step(self, x: torch.Tensor, targets: Targets, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """One Adam step on one augmented sub-batch; returns detached loss terms."""
        with autocast_for(self.device, self.cfg.amp):
            out = self.model(model_input(x, self.cfg.channels_last))
        total, terms = self.loss_fn(
            out.probs,
            out.att_probs,
            targets.balanced[idx],
            targets.sharpened[idx],
            targets.relation_labels[idx],
        )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {"loss/total": total.detach(), **{f"loss/{k}": v.detach() for k, v in terms.items()}}

    def run_iteration(self, iteration: int) -> dict[str, float]:
        """One outer iteration: targets on a fresh large batch, then training on it."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(iteration, self.cfg.iterations, self.cfg.lr, self.cfg.lr_schedule)
        idx = large_batch_indices(len(self.images), self.cfg.large_batch, iteration, self.params.seed)
        batch = self.images[idx.to(self.device)]
        losses = self.train_on(batch, self.compute_targets(batch, iteration), iteration)
        if not all(math.isfinite(v) for v in losses.values()):
            raise TrainingDiverged(
                f"non-finite loss in iteration {iteration + 1}: {losses}. "
                "Lower train.lr, or check the input data for NaNs; the last checkpoint is kept."
            )
        return {**losses, **self.target_stats, "lr": self.optimizer.param_groups[0]["lr"]}

    def finalize(self) -> None:
        """Fit BatchNorm statistics to the clean data set (when re-estimation is on)."""
        if self.cfg.bn_reestimate:
            cfg = self.cfg
            reestimate_batchnorm(
                self.model, self.images, cfg.target_chunk, self.grayscale, self.device, cfg.channels_last
            )
        self.model.eval()

    def evaluate(self, labels: np.ndarray) -> dict[str, float]:
        """Monitoring only (never used to select a model): ACC / NMI / ARI on the data set.

        BatchNorm statistics are put back afterwards, so monitoring cannot change training.
        """
        with preserved_batchnorm_stats(self.model):
            self.finalize()
            out = chunked_outputs(
                self.model,
                self.images,
                self.cfg.target_chunk,
                self.grayscale,
                self.device,
                self.cfg.amp,
                self.cfg.channels_last,
            )
        scores = cluster_scores(out.probs.argmax(1).numpy(), labels)
        return {"acc": scores.acc, "nmi": scores.nmi, "ari": scores.ari}

    def state(self, iterations_done: int, history: list[dict[str, float]]) -> dict:
        """Everything a resume needs, in weights-only-loadable types."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "iteration": iterations_done,
            "rng": rng_state(),
            "params": params_to_dict(self.params),
            "history": history,
            "scaler": self.scaler.state_dict(),
        }

    def load_state(self, state: dict) -> None:
        """Restore model, optimizer and RNG states from a checkpoint."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state["rng"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def try_resume(trainer: Trainer, checkpoint: Path | None) -> tuple[int, list[dict[str, float]]]:
    """Load a compatible checkpoint: (iterations done, history); (0, []) when there is none."""
    if checkpoint is None or not checkpoint.is_file():
        return 0, []
    state = load_checkpoint(checkpoint)
    saved = state.get("params")
    if not isinstance(saved, dict) or training_params_from_dict(saved) != training_params(trainer.params):
        log.warning("checkpoint %s was made with other params: starting from scratch", checkpoint)
        return 0, []
    trainer.load_state(state)
    log.info("resuming from %s after iteration %d", checkpoint, state["iteration"])
    return int(state["iteration"]), list(state.get("history", []))


def training_params_from_dict(raw: dict) -> dict | None:
    """`training_params` of a params dict stored in a checkpoint, or None if it is not valid."""
    from gatcluster.config import ParamsError, params_from_dict

    try:
        return training_params(params_from_dict(raw))
    except ParamsError:
        return None


def fit(
    params: Params,
    images: torch.Tensor,
    labels: np.ndarray | None = None,
    log_fn: LogFn | None = None,
    checkpoint: Path | None = None,
) -> FitResult:
    """Train GATCluster on uint8 images (N, C, S, S); resume from `checkpoint` when compatible.

    `labels` only feed the periodic monitoring metrics (`train.eval_every`); they never choose
    the model. `log_fn(iteration, metrics)` receives each iteration's mean losses (1-based step).
    """
    if len(images) < params.train.sub_batch:
        raise TrainingSetupError(
            f"the data set has {len(images)} images, fewer than train.sub_batch ({params.train.sub_batch}): "
            "lower train.sub_batch or add images"
        )
    device = resolve_device(params.train.device)
    trainer = Trainer(params, images, device)
    done, history = try_resume(trainer, checkpoint)
    started, cfg = time.perf_counter(), params.train
    for iteration in range(done, cfg.iterations):
        tic = time.perf_counter()
        metrics = trainer.run_iteration(iteration)
        metrics["seconds"] = time.perf_counter() - tic
        step = iteration + 1
        if labels is not None and cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.iterations):
            metrics.update(trainer.evaluate(labels))
        history.append({"step": step, **metrics})
        if log_fn is not None:
            log_fn(step, metrics)
        if (
            checkpoint is not None
            and cfg.checkpoint_every
            and (step % cfg.checkpoint_every == 0 or step == cfg.iterations)
        ):
            save_checkpoint(trainer.state(step, history), checkpoint)
    trainer.finalize()
    return FitResult(trainer.model, history, done, time.perf_counter() - started)

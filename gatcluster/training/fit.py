"""Training entry point: `fit(params, images, ...)` runs the trainer to the end, with resume.

`Trainer` (trainer.py) does one outer iteration at a time; `fit` loops over them, logs, writes
checkpoints, resumes from a compatible one, and selects one head at the end (without labels).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from gatcluster.config.params import NO_CUDA_MESSAGE, Params
from gatcluster.data.model_images import ModelImages
from gatcluster.model import GATCluster
from gatcluster.training.checkpoint import save_checkpoint
from gatcluster.training.distributed import SINGLE_PROCESS, Ranks, rank_device
from gatcluster.training.head_selection import best_head
from gatcluster.training.resume import try_resume
from gatcluster.training.trainer import Trainer, TrainingDiverged

LogFn = Callable[[int, dict[str, float]], None]
T = TypeVar("T")


class LostProcess(RuntimeError):
    """A collective operation failed: another training process died or cannot be reached."""


class TrainingSetupError(ValueError):
    """The params cannot run on this data or machine (too few images, no GPU); says what to change."""


@dataclass
class FitResult:
    """The trained model and what happened while training it."""

    model: GATCluster
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0  # iterations already done in the checkpoint that was resumed
    seconds: float = 0.0
    head_losses: list[float] = field(default_factory=list)  # selection loss per head (several heads)
    selected_head: int = 0
    head_predictions: list[np.ndarray] = field(default_factory=list)  # cluster per image, per head


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when usable, else CPU; `cuda` without a GPU is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingSetupError(NO_CUDA_MESSAGE)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def among_ranks(ranks: Ranks, when: str, call: Callable[[], T]) -> T:
    """`call()`; with several processes a failed collective (gloo / NCCL report a dead peer as a
    RuntimeError) becomes one LostProcess line instead of a traceback per rank."""
    if not ranks.distributed:
        return call()
    try:
        return call()
    except TrainingDiverged:
        raise
    except RuntimeError as err:
        text = str(err).strip()
        first_line = text.splitlines()[0] if text else type(err).__name__
        raise LostProcess(
            f"rank {ranks.rank} lost contact with the other training processes {when} "
            f"({first_line[:300]}); another process probably failed (see its message)"
        ) from err


def run_iteration(trainer: Trainer, iteration: int) -> dict[str, float]:
    """One iteration; with several processes, a failed collective becomes LostProcess."""
    return among_ranks(
        trainer.ranks, f"in iteration {iteration + 1}", partial(trainer.run_iteration, iteration)
    )


def keep_checkpoint(trainer: Trainer, step: int, history: list[dict[str, float]], path: Path) -> None:
    """Save the training state after iteration `step` at `path` (atomically: the last one stays
    until the new one is complete)."""
    save_checkpoint(trainer.state(step, history), path)


def log_or_keep(log_fn: LogFn, step: int, metrics: dict[str, float], keep: Callable[[], None] | None) -> None:
    """`log_fn(step, metrics)`; when it fails (the tracking store refused: a server down, a locked
    mlflow.db), `keep()` saves this iteration first, so the next run resumes here rather than at
    the last checkpoint. A save that fails too leaves the log's error the one reported."""
    try:
        log_fn(step, metrics)
    except Exception:
        if keep is not None:
            with contextlib.suppress(Exception):
                keep()
        raise


def start_trainer(
    params: Params,
    images: torch.Tensor | ModelImages,
    device: torch.device,
    ranks: Ranks,
    data_id: str | None,
) -> Trainer:
    """The Trainer; a peer that failed before training (rank 0 stopped by a setup error) breaks the
    model's first broadcast: LostProcess, as in an iteration."""
    return among_ranks(ranks, "while setting up", partial(Trainer, params, images, device, ranks, data_id))


def fit(
    params: Params,
    images: torch.Tensor | ModelImages,
    labels: np.ndarray | None = None,
    log_fn: LogFn | None = None,
    checkpoint: Path | None = None,
    ranks: Ranks = SINGLE_PROCESS,
    data_id: str | None = None,
) -> FitResult:
    """Train GATCluster on uint8 images (N, C, S, S); resume from `checkpoint` when compatible.

    `data_id` names the data set (the fetched manifest's checksum): a checkpoint written on other
    data is not resumed, though params and code match (a folder whose images changed).

    `images` is a tensor (moved to the device whole) or ModelImages (read from disk per batch).
    `labels` only feed the periodic monitoring metrics (`train.eval_every`); they never choose
    the model. `log_fn(iteration, metrics)` receives each iteration's mean losses (1-based step).
    With several `ranks` (torchrun, process group started), every rank calls `fit`; rank 0 alone
    writes checkpoints, monitors, refits BatchNorm and selects the head. The other ranks return
    after the last iteration with their (equal) trained weights, unfinalized.
    """
    if len(images) < params.train.sub_batch:
        raise TrainingSetupError(
            f"the data set has {len(images)} images, fewer than train.sub_batch ({params.train.sub_batch}): "
            "lower train.sub_batch or add images"
        )
    device = rank_device(resolve_device(params.train.device), ranks)
    started = time.perf_counter()
    trainer = start_trainer(params, images, device, ranks, data_id)
    try:
        return train_and_finalize(trainer, params, labels, log_fn, checkpoint, ranks, started)
    finally:
        trainer.close()  # the read-ahead thread stops with the run, however it ends


def train_and_finalize(
    trainer: Trainer,
    params: Params,
    labels: np.ndarray | None,
    log_fn: LogFn | None,
    checkpoint: Path | None,
    ranks: Ranks,
    started: float,
) -> FitResult:
    """`fit`'s iterations (resumed where the checkpoint allows), then BatchNorm refit and head choice."""
    cfg = params.train
    done, history = try_resume(trainer, checkpoint)
    saves = ranks.is_main and checkpoint is not None and cfg.checkpoint_every > 0
    for iteration in range(done, cfg.iterations):
        tic = time.perf_counter()
        metrics = run_iteration(trainer, iteration)
        metrics["seconds"] = time.perf_counter() - tic
        step = iteration + 1
        if (
            ranks.is_main
            and labels is not None
            and cfg.eval_every
            and (step % cfg.eval_every == 0 or step == cfg.iterations)
        ):
            metrics.update(trainer.evaluate(labels))
        history.append({"step": step, **metrics})
        keep = partial(keep_checkpoint, trainer, step, history, checkpoint) if saves else None
        if log_fn is not None:
            log_or_keep(log_fn, step, metrics, keep)
        if keep is not None and (step % cfg.checkpoint_every == 0 or step == cfg.iterations):
            keep()
    trainer.end_training()
    if not ranks.is_main:
        return FitResult(trainer.output_model, history, done, time.perf_counter() - started)
    trainer.finalize()
    result = FitResult(trainer.output_model, history, done)
    if trainer.output_model.num_heads > 1:
        result.head_predictions = [
            p.argmax(1).numpy() for p in trainer.head_probs()[: trainer.output_model.num_heads]
        ]
        result.head_losses = trainer.select_head()
        result.selected_head = best_head(result.head_losses)
    result.seconds = time.perf_counter() - started
    return result

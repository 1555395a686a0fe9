"""Label-free choice among several starts (`train.candidates`): most of a run's fate is decided early.

Runs that differ only in their seed end far apart (mnist5k: ACC 0.72 to 0.94), because digit pairs
merged in the first iterations are never split again. Here C starts (the run's seed and C - 1
seeds derived from it) each train `train.candidate_iterations` iterations; each is scored by its
own training loss on the run's fixed selection batch (as heads are, `Trainer.selection_losses`),
and the lowest-loss start trains on to `train.iterations` while the others are dropped. Labels
play no part. The chosen start continues exactly as a plain run of its seed would (its random
state is put back), so a run with candidates equals the plain run of the seed it chose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from gatcluster.config.params import Params
from gatcluster.data.model_images import ModelImages
from gatcluster.training.checkpoint import restore_rng_state, rng_state
from gatcluster.training.streams import CANDIDATE, derived_seed
from gatcluster.training.trainer import Trainer

LogFn = Callable[[int, dict[str, float]], None]
IterationFn = Callable[[Trainer, int], dict[str, float]]


def candidate_seed(seed: int, candidate: int) -> int:
    """The seed of candidate start `candidate`: the run's own for the first, derived ones after."""
    return seed if candidate == 0 else derived_seed(seed, candidate, CANDIDATE) % (2**31)


@dataclass
class Start:
    """A candidate start after its first iterations."""

    index: int
    trainer: Trainer
    score: float
    history: list[dict[str, float]] = field(default_factory=list)
    rng: dict = field(default_factory=dict)


def train_start(
    params: Params,
    images: torch.Tensor | ModelImages,
    device: torch.device,
    index: int,
    run_iteration: IterationFn,
    log_fn: LogFn | None,
) -> Start:
    """Train candidate `index` for `train.candidate_iterations` iterations and score it."""
    trainer = Trainer(params, images, device, seed=candidate_seed(params.seed, index))
    history = []
    for iteration in range(params.train.candidate_iterations):
        metrics = run_iteration(trainer, iteration)
        history.append({"step": iteration + 1, **metrics})
        if log_fn is not None:
            log_fn(iteration + 1, {f"candidate{index}/{k}": v for k, v in metrics.items()})
    rng = rng_state()  # where this start's random state stands: its continuation begins here
    return Start(index, trainer, trainer.start_score(), history, rng)


def choose_start(
    params: Params,
    images: torch.Tensor | ModelImages,
    device: torch.device,
    run_iteration: IterationFn,
    log_fn: LogFn | None = None,
    labels: np.ndarray | None = None,
) -> Start:
    """Train every candidate start in turn and keep the lowest-scoring one (at most two in memory).

    `labels`, when given, only add each candidate's ACC to the log (`candidate<c>/acc`), to see
    how good the label-free choice was; they never take part in it.
    """
    images = images.to(device) if isinstance(images, torch.Tensor) else images  # one copy for all
    best: Start | None = None
    for index in range(params.train.candidates):
        start = train_start(params, images, device, index, run_iteration, log_fn)
        if log_fn is not None:
            report = {f"candidate{index}/selection_loss": start.score}
            if labels is not None:
                report[f"candidate{index}/acc"] = start.trainer.evaluate(labels)["acc"]
            log_fn(params.train.candidate_iterations, report)
        if best is None or start.score < best.score:
            best = start
    assert best is not None
    restore_rng_state(best.rng)
    if log_fn is not None:
        log_fn(params.train.candidate_iterations, {"train/chosen_candidate": float(best.index)})
        for record in best.history:  # the chosen start's first iterations under the run's own keys
            log_fn(int(record["step"]), {k: v for k, v in record.items() if k != "step"})
    return best

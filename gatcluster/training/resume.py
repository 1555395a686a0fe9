"""Resuming training: which params and code a checkpoint must share, and loading a compatible one.

A checkpoint is resumed only when every param that decides what training computes is equal, it
was written by the same training code (data, model and training sources) and on the same data
set (its checksum, when the caller names one); params that do not (checkpoint and monitoring
intervals, device) may change in between.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from gatcluster.config.loading import saved_params_from_dict
from gatcluster.config.params import Params, ParamsError, params_to_dict
from gatcluster.training.checkpoint import CheckpointError, first_line, load_checkpoint

if TYPE_CHECKING:
    from gatcluster.training.trainer import Trainer

log = logging.getLogger(__name__)

# Params that do not change what training computes: a checkpoint stays valid across them. The
# process count is one of them: batch semantics are equal across world sizes (README, Scaling out).
NON_TRAINING_KEYS = {"checkpoint_every", "eval_every", "device", "processes", "compile"}
NON_TRAINING_EXPERIMENTAL = {"cuda_graphs"}  # how a CUDA step is launched, not what it computes


# The subpackages whose code decides what training computes: data preparation and views, the
# network, the trainer and its losses. A checkpoint written by other code is not resumed: it would
# continue another computation under the same params.
TRAINING_CODE = ("data", "model", "training")


@functools.cache
def code_digest() -> str:
    """A short sha256 of this package's training code (file names and contents, not locations)."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for folder in TRAINING_CODE:
        for path in sorted((package / folder).rglob("*.py")):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


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
        "experimental": {k: v for k, v in raw["experimental"].items() if k not in NON_TRAINING_EXPERIMENTAL},
    }


def params_digest(params: Params) -> str:
    """A short sha256 of `training_params`: equal digests mean a checkpoint can be resumed."""
    text = json.dumps(training_params(params), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resumable(state: dict, params: Params, data_id: str | None = None) -> bool:
    """Whether checkpoint `state` continues training `params` with this code on data `data_id`."""
    saved = state.get("params")
    if state.get("code") != code_digest() or state.get("data") != data_id or not isinstance(saved, dict):
        return False
    return training_params_from_dict(saved) == training_params(params)


def try_resume(trainer: Trainer, checkpoint: Path | None) -> tuple[int, list[dict[str, float]]]:
    """Load a compatible checkpoint: (iterations done, history); (0, []) when there is none."""
    if checkpoint is None or not checkpoint.is_file():
        return 0, []
    state = load_checkpoint(checkpoint)
    if not resumable(state, trainer.params, trainer.data_id):
        if trainer.ranks.is_main:  # every rank decides alike; one line says so
            log.warning(
                "checkpoint %s was made with other params, other training code or on other data:"
                " starting from scratch",
                checkpoint,
            )
        return 0, []
    try:
        trainer.load_state(state)
        done, history = int(state["iteration"]), list(state.get("history", []))
    except (KeyError, RuntimeError, TypeError, ValueError) as err:  # made for these params, but damaged
        if isinstance(err, torch.OutOfMemoryError) or "CUDA" in str(err):
            raise  # the device failed, not the file: the checkpoint stays valid
        raise CheckpointError(
            f"checkpoint {checkpoint} is damaged ({first_line(err)}): delete it to start over"
        ) from err
    log.info("resuming from %s after iteration %d", checkpoint, done)
    return done, history


def training_params_from_dict(raw: dict) -> dict | None:
    """`training_params` of a params dict stored in a checkpoint, or None if it is not valid.

    Keys the checkpoint's version did not have count at their "off" values (what it trained with).
    """
    try:
        return training_params(saved_params_from_dict(raw))
    except ParamsError:
        return None

"""Training checkpoints: atomic writes, loadable with `torch.load(..., weights_only=True)`.

Everything stored is a tensor, number, string or plain container: model and optimizer state,
the number of finished iterations, RNG states of torch / numpy / random, and the params dict.
"""

from __future__ import annotations

import io
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gatcluster.atomic import atomic_path


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read."""


def rng_state() -> dict[str, Any]:
    """The global RNG states as tensors and ints."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "python_version": int(py_version),
        "python_state": torch.tensor(py_state, dtype=torch.int64),
        "python_gauss": py_gauss,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back global RNG states saved by `rng_state`."""
    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], state["numpy_has_gauss"], state["numpy_gauss"]))
    py_state = tuple(int(v) for v in state["python_state"].tolist())
    random.setstate((state["python_version"], py_state, state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` via a temporary file and an atomic rename.

    Serialized in memory first: torch.save reports a failed file write (a full disk) as a bare
    RuntimeError, a plain file write as an OSError that says so (atomic.WriteError).
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        # The bytes, not a view of the buffer (getbuffer): a failed write's traceback kept the view,
        # and on Python 3.13 freeing the buffer under it printed an "Exception ignored" traceback.
        tmp.write_bytes(buffer.getvalue())


def load_checkpoint(
    path: Path, what: str = "checkpoint", remedy: str = "delete it to start over"
) -> dict[str, Any]:
    """Read a checkpoint (or another file of `what` kind) with `weights_only=True`; a one-line
    `CheckpointError` ending in `remedy` if it is unusable."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"cannot read {what} {path} ({load_failure(err, path)}): {remedy}") from err
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} is not a gatcluster {what} (it holds a {type(state).__name__}): {remedy}"
        )
    return state


def load_failure(err: Exception, path: Path) -> str:
    """Why torch could not load `path`, in a few words."""
    if isinstance(err, pickle.UnpicklingError):
        # Not torch's text: it advises weights_only=False, which would run whatever the file holds.
        return "damaged, or not a file of tensors that loads safely"
    if str(err).strip():
        return first_line(err)
    return "an empty file" if path.is_file() and path.stat().st_size == 0 else type(err).__name__


def first_line(err: Exception) -> str:
    """An exception's message cut to one line (its type name when it has none)."""
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else type(err).__name__

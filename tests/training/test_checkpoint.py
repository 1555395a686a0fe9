"""Checkpoints: weights-only loadable, atomic, RNG states restored exactly, clear errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from gatcluster.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)


def draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    np.random.randn()  # leave a cached gauss in numpy's state
    save_checkpoint({"rng": rng_state(), "iteration": 4}, tmp_path / "c.pt")
    expected = draws()
    state = load_checkpoint(tmp_path / "c.pt")
    restore_rng_state(state["rng"])
    assert draws() == expected and state["iteration"] == 4


def test_model_state_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.rand(4, 3)).sum().backward()
    opt.step()
    save_checkpoint(
        {"model": model.state_dict(), "optimizer": opt.state_dict(), "params": {"a": [1]}}, tmp_path / "m.pt"
    )
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert all(torch.equal(state["model"][k], v) for k, v in model.state_dict().items())
    assert state["params"] == {"a": [1]} and state["optimizer"]["state"][0]["step"] == 1


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"iteration": 1}, path)
    with pytest.raises(Exception):  # noqa: B017 - torch raises its own pickling error types
        save_checkpoint({"iteration": 2, "bad": lambda: None}, path)
    assert load_checkpoint(path)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a checkpoint", "damaged, or not a file of tensors that loads safely"),  # not torch's advice
        (b"", "an empty file"),
    ],
)
def test_unreadable_checkpoint_is_a_clear_error(tmp_path, content, reason):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(
        CheckpointError, match=f"^cannot read checkpoint {path} \\({reason}\\): delete it to start over$"
    ):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=f"cannot read model file {path} .*: train it again"):
        load_checkpoint(path, "model file", "train it again")


def test_a_torch_file_of_something_else_is_no_checkpoint(tmp_path):
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="list.pt is not a gatcluster checkpoint \\(it holds a list\\)"):
        load_checkpoint(tmp_path / "list.pt")

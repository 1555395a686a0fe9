"""fit's setup around the trainer: a peer lost before training is one line, not a traceback per rank."""

from __future__ import annotations

import pytest
import torch

from gatcluster.config.params import Params
from gatcluster.training import fit as fit_module
from gatcluster.training.distributed import SINGLE_PROCESS, Ranks
from gatcluster.training.fit import LostProcess, start_trainer


def peer_gone(*args: object) -> None:
    """What DDP's first broadcast raises on rank 1 when rank 0 stopped before training."""
    raise RuntimeError("[gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:31638.\nmore")


def test_a_peer_lost_while_setting_up_is_lost_process_on_the_other_ranks(monkeypatch):
    monkeypatch.setattr(fit_module, "Trainer", peer_gone)
    images = torch.zeros(4, 1, 32, 32, dtype=torch.uint8)
    with pytest.raises(LostProcess, match=r"^rank 1 lost contact .* while setting up \(\[gloo.*31638\.\);"):
        start_trainer(Params(), images, torch.device("cpu"), Ranks(1, 2, 1), None)
    with pytest.raises(RuntimeError, match="Connection closed") as raised:  # alone: a bug, kept as it is
        start_trainer(Params(), images, torch.device("cpu"), SINGLE_PROCESS, None)
    assert not isinstance(raised.value, LostProcess)

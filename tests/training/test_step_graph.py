"""The recorded optimizer step's CPU-checkable parts: static buffers, Adam's settings per device.

Recording and replaying need CUDA: tests/training/test_cuda_training.py (marked gpu) checks that
replayed steps train as eager ones do.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from gatcluster.training.losses import Targets
from gatcluster.training.step_graph import (
    GraphCaptureFailed,
    GraphedStep,
    adam_for,
    reapply_adam_settings,
    records_steps,
    set_lr,
)

CPU = torch.device("cpu")


def batch_and_targets(rows: int = 8, clusters: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    view = torch.rand(rows, 1, 4, 4, generator=gen)
    probs = torch.rand(rows, clusters, generator=gen).softmax(dim=1)
    labels = torch.randint(0, clusters, (rows,), generator=gen)
    return view, [Targets(probs, probs.square(), labels)]


def recorded_inputs(view: torch.Tensor, targets: list[Targets], idx: torch.Tensor) -> dict:
    """A stand-in step: what it was given, so a test sees which rows and targets arrived."""
    return {"x": view.clone(), "balanced": targets[0].balanced[idx].clone(), "idx": idx.clone()}


def test_load_copies_into_the_same_buffers_while_the_layout_holds():
    graphed = GraphedStep(recorded_inputs)
    view, targets = batch_and_targets(seed=0)
    graphed.load(view, targets)
    buffers = (graphed.view, *graphed.targets[0])
    assert graphed.view is not view  # a copy: the caller's tensors may be freed or changed
    new_view, new_targets = batch_and_targets(seed=1)
    graphed.load(new_view, new_targets)
    assert all(a is b for a, b in zip(buffers, (graphed.view, *graphed.targets[0]), strict=True))
    assert torch.equal(graphed.view, new_view)
    assert all(torch.equal(a, b) for a, b in zip(graphed.targets[0], new_targets[0], strict=True))


def test_load_of_another_layout_makes_new_buffers_and_records_anew():
    graphed = GraphedStep(recorded_inputs)
    graphed.load(*batch_and_targets(rows=8))
    graphed.graph, graphed.eager_steps = object(), 3  # as if recorded
    graphed.load(*batch_and_targets(rows=6))
    assert graphed.view.shape[0] == 6 and graphed.graph is None and graphed.eager_steps == 0


def test_three_warm_up_steps_then_one_capture_then_replays_on_one_index_buffer(monkeypatch):
    calls = []

    class Recorded:
        def replay(self):
            calls.append("replay")

    def capture():
        calls.append("capture")
        graphed.graph = Recorded()
        return {}

    graphed = GraphedStep(recorded_inputs)
    graphed.load(*batch_and_targets())
    monkeypatch.setattr(graphed, "warm_up", lambda: calls.append("warm-up") or {})
    monkeypatch.setattr(graphed, "capture", capture)
    graphed(torch.tensor([0, 1]))
    index_buffer = graphed.idx
    for step in range(1, 6):
        graphed(torch.tensor([step, step + 1]))
    assert calls == ["warm-up"] * 3 + ["capture", "replay", "replay"]
    assert graphed.idx is index_buffer and graphed.idx.tolist() == [5, 6]  # what the graph reads


def test_a_failed_capture_stops_with_its_cause_and_the_switch(monkeypatch):
    @contextmanager
    def failing_capture(graph, capture_error_mode):
        try:
            yield
        finally:  # as capture_end reports an invalidated capture, hiding the error inside it
            raise RuntimeError("operation failed due to a previous error during capture")

    def step_that_syncs(view, targets, idx):
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    monkeypatch.setattr(torch.cuda, "CUDAGraph", object)
    monkeypatch.setattr(torch.cuda, "graph", failing_capture)
    graphed = GraphedStep(step_that_syncs)
    graphed.load(*batch_and_targets())
    graphed.idx = torch.arange(4)
    with pytest.raises(GraphCaptureFailed) as failed:
        graphed.capture()
    message = str(failed.value)
    assert "(operation not permitted when stream is capturing)" in message
    assert "-S ++experimental.cuda_graphs=false" in message and "\n" not in message
    assert graphed.graph is None


def test_adam_that_records_nothing_keeps_torch_defaults():
    group = adam_for([torch.nn.Parameter(torch.ones(2))], 0.002, CPU, False).param_groups[0]
    assert group["lr"] == 0.002 and not group["capturable"]


def test_set_lr_sets_floats_and_fills_rate_tensors_in_place():
    plain = adam_for([torch.nn.Parameter(torch.ones(2))], 0.002, CPU, False)
    set_lr(plain, 0.001)
    assert plain.param_groups[0]["lr"] == 0.001
    rate = torch.tensor(0.002)
    as_tensor = torch.optim.Adam([torch.nn.Parameter(torch.ones(2))], lr=rate, foreach=False)
    set_lr(as_tensor, 0.001)
    # The same tensor, changed: a recorded step reads the rate from its address.
    assert as_tensor.param_groups[0]["lr"] is rate and rate.item() == pytest.approx(0.001)


def test_an_eager_run_resumes_a_recording_runs_optimizer_state():
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = adam_for([param], 0.002, CPU, False)
    param.sum().backward()
    optimizer.step()
    saved = optimizer.state_dict()
    # What a run with recorded steps saves, as load_checkpoint maps it to the CPU.
    saved["param_groups"][0].update(lr=torch.tensor(0.0015), capturable=True)
    resumed = adam_for([param], 0.002, CPU, False)
    resumed.load_state_dict(saved)
    reapply_adam_settings(resumed, CPU, False)
    group = resumed.param_groups[0]
    assert group["lr"] == pytest.approx(0.0015) and isinstance(group["lr"], float) and not group["capturable"]
    resumed.step()  # a capturable group or a rate tensor would refuse the CPU's default Adam
    assert torch.isfinite(param).all()


def test_loaded_settings_follow_this_runs_recording():
    # torch places loaded step counts by the saved groups' flag; moving them between the CPU and a
    # GPU is checked on CUDA (test_cuda_training.py: a recording run resumes an eager checkpoint).
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = adam_for([param], 0.002, CPU, False)
    param.sum().backward()
    optimizer.step()
    reapply_adam_settings(optimizer, CPU, True)
    group = optimizer.param_groups[0]
    assert group["capturable"] and isinstance(group["lr"], torch.Tensor)
    assert optimizer.state[param]["step"].device == param.device
    reapply_adam_settings(optimizer, CPU, False)
    assert not group["capturable"] and group["lr"] == pytest.approx(0.002)
    assert optimizer.state[param]["step"].device == CPU


CUDA = torch.device("cuda")  # only compared, never used: no GPU needed


@pytest.mark.parametrize(
    ("asked", "device", "distributed", "compiled", "loss_scaling"),
    [
        (False, CUDA, False, False, False),
        (True, CPU, False, False, False),
        (True, CUDA, True, False, False),
        (True, CUDA, False, True, False),
        (True, CUDA, False, False, True),
    ],
)
def test_steps_are_recorded_only_when_asked_on_cuda_in_one_uncompiled_unscaled_process(
    asked, device, distributed, compiled, loss_scaling
):
    assert records_steps(True, CUDA, False, False, False)
    assert not records_steps(asked, device, distributed, compiled, loss_scaling)

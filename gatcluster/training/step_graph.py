"""The optimizer step recorded once as a CUDA graph and replayed (`train.cuda_graphs`).

An eager step of this small network is a few hundred short kernels (forward, loss, backward, Adam),
each launched by the host: on a GPU the host's launches, not the GPU, set the pace. Replaying a
recorded CUDA graph launches them all in one call. This follows PyTorch's whole-network capture
recipe (docs, "CUDA Graphs"): warm-up steps on a side stream, one step captured, replays after.

A graph reads and writes fixed addresses, so the step's inputs live in static buffers: the large
batch's augmented view and every head's targets (copied in once per iteration) and the sub-batch's
row indices (copied in per step); the sub-batch is gathered inside the graph. Every step here is a
real training step: the warm-up steps and the captured one are not repeated or skipped, so training
with graphs takes the same steps as without. The optimizer must be capturable (Adam's step count and
learning rate on the device: `adam_for`). Should capture fail, the step runs eagerly from then on,
with one warning.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import torch

from gatcluster.training.losses import Targets

log = logging.getLogger(__name__)

# Eager steps before the capture: PyTorch's recipe warms up on a side stream so that lazily
# created state (Adam's moments, cuBLAS/cuDNN handles, autograd's buffers) exists before recording.
WARMUP_STEPS = 3

StepFn = Callable[[torch.Tensor, list[Targets], torch.Tensor], dict[str, torch.Tensor]]


def adam_for(parameters, lr: float, device: torch.device, capturable: bool) -> torch.optim.Adam:
    """Adam as the trainer uses it: `capturable` for recorded steps (step counts and a learning-rate
    tensor on the device, so a replayed step reads the current rate), torch's defaults otherwise."""
    if capturable:
        return torch.optim.Adam(parameters, lr=torch.tensor(lr, device=device), capturable=True)
    return torch.optim.Adam(parameters, lr=lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate: in place where it is a tensor (a recorded step reads it)."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def reapply_adam_settings(optimizer: torch.optim.Optimizer, device: torch.device, capturable: bool) -> None:
    """After `load_state_dict`: the groups carry the saved run's settings (a float rate and
    capturable=False, or a rate tensor mapped to the CPU and capturable=True); put back this run's."""
    for group in optimizer.param_groups:
        lr = float(group["lr"])
        group["capturable"] = capturable
        group["lr"] = torch.tensor(lr, device=device) if capturable else lr


def same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether `b` can be copied into `a` in place (same shape and dtype)."""
    return a.shape == b.shape and a.dtype == b.dtype


class GraphedStep:
    """`step(view[idx], targets, idx)` on static buffers: eager for the warm-up steps, then recorded
    once and replayed. `load` gives each iteration's view and targets; calling it runs one step."""

    def __init__(self, step: StepFn) -> None:
        self.step = step
        self.view: torch.Tensor | None = None
        self.targets: list[Targets] = []
        self.idx: torch.Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: dict[str, torch.Tensor] = {}
        self.eager_steps = 0
        self.eager_only = False  # capture failed: every step runs eagerly

    def load(self, view: torch.Tensor, targets: list[Targets]) -> None:
        """Copy this iteration's augmented view and targets into the static buffers."""
        if self.view is None or not self.fits(view, targets):
            self.view = view.clone()
            self.targets = [Targets(*(t.clone() for t in head)) for head in targets]
            self.idx, self.graph, self.eager_steps = None, None, 0  # new addresses: record anew
            return
        self.view.copy_(view)
        for static, new in zip(self.targets, targets, strict=True):
            for into, values in zip(static, new, strict=True):
                into.copy_(values)

    def fits(self, view: torch.Tensor, targets: list[Targets]) -> bool:
        """Whether `view` and `targets` have the static buffers' shapes and dtypes."""
        if len(targets) != len(self.targets) or not same_layout(self.view, view):
            return False
        pairs = zip(self.targets, targets, strict=True)
        return all(same_layout(a, b) for old, new in pairs for a, b in zip(old, new, strict=True))

    def __call__(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step on rows `idx` of the loaded view; the step's detached loss terms
        (after a replay, the graph's own output tensors: read them before the next step)."""
        if self.eager_only:
            return self.run_step(idx)
        if self.idx is None or not same_layout(self.idx, idx):
            self.idx, self.graph, self.eager_steps = idx.clone(), None, 0
        else:
            self.idx.copy_(idx)
        if self.graph is not None:
            self.graph.replay()
            return self.outputs
        if self.eager_steps < WARMUP_STEPS:
            self.eager_steps += 1
            return self.warm_up()
        return self.capture()

    def run_step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """The step, eagerly, on rows `idx` of the static view."""
        return self.step(self.view[idx], self.targets, idx)

    def warm_up(self) -> dict[str, torch.Tensor]:
        """One eager step on a side stream (the recipe's warm-up), then back on the current one."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), warnings.catch_warnings():
            # Adam's once-per-instance note that a capturable optimizer stepping outside a capture
            # is slower: these few steps are meant to run outside it.
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            outputs = self.run_step(self.idx)
        torch.cuda.current_stream().wait_stream(side)
        return outputs

    def capture(self) -> dict[str, torch.Tensor]:
        """Record one step (which does not run it), then replay it: this step's result."""
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: the read-ahead thread may pin and copy the next batch meanwhile.
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                outputs = self.run_step(self.idx)
        except RuntimeError as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            log.warning("CUDA graph capture failed (%s); optimizer steps run eagerly", reason[:200])
            self.eager_only = True
            return self.run_step(self.idx)  # nothing recorded ran: this step is still to take
        self.graph, self.outputs = graph, outputs
        graph.replay()
        return outputs

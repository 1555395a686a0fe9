"""The optimizer step recorded once as a CUDA graph and replayed (`experimental.cuda_graphs`).

An eager step of this small network is a few hundred short kernels (forward, loss, backward, Adam),
each launched by the host: on a GPU the host's launches, not the GPU, set the pace. Replaying a
recorded CUDA graph launches them all in one call. This follows PyTorch's whole-network capture
recipe (docs, "CUDA Graphs"): warm-up steps on a side stream, one step captured, replays after.

A graph reads and writes fixed addresses, so the step's inputs live in static buffers: the large
batch's augmented view and every head's targets (copied in once per iteration) and the sub-batch's
row indices (copied in per step); the sub-batch is gathered inside the graph. Every step here is a
real training step: the warm-up steps and the captured one are not repeated or skipped, so training
with graphs takes the same steps as without. The optimizer must be capturable (Adam's step count and
learning rate on the device: `adam_for`). A failed capture stops training with GraphCaptureFailed,
naming the switch that turns recording off: a capture that failed midway leaves PyTorch's CUDA
memory allocator believing it still records, so eager steps after it cannot be trusted.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch

from gatcluster.training.losses import Targets

# Eager steps before the capture: PyTorch's recipe warms up on a side stream so that lazily
# created state (Adam's moments, cuBLAS/cuDNN handles, autograd's buffers) exists before recording.
WARMUP_STEPS = 3


class GraphCaptureFailed(RuntimeError):
    """Recording the optimizer step as a CUDA graph failed; says how to train without recording."""


StepFn = Callable[[torch.Tensor, list[Targets], torch.Tensor], dict[str, torch.Tensor]]


def records_steps(
    asked: bool, device: torch.device, distributed: bool, compiled: bool, loss_scaling: bool
) -> bool:
    """Whether optimizer steps are recorded: `asked` (experimental.cuda_graphs), on CUDA, in one
    process (DDP's collectives are not recorded here), not compiled (train.compile), without fp16
    loss scaling (GradScaler reads its overflow check back to the host every step)."""
    return asked and device.type == "cuda" and not (distributed or compiled or loss_scaling)


def adam_for(
    parameters: Iterable[torch.nn.Parameter], lr: float, device: torch.device, capturable: bool
) -> torch.optim.Adam:
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
    """After `load_state_dict`: the groups and step counts carry the saved run's settings (a float
    rate, counts on the CPU; or a rate tensor and counts on the device, capturable); put back this
    run's. torch places loaded counts by the saved groups' flag, not by this optimizer's."""
    for group in optimizer.param_groups:
        lr = float(group["lr"])
        group["capturable"] = capturable
        group["lr"] = torch.tensor(lr, device=device) if capturable else lr
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if "step" in state:
                state["step"] = state["step"].to(param.device if capturable else "cpu")


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
            # capture_end's own error hides the cause: the error raised inside the capture.
            cause = err.__context__ if isinstance(err.__context__, Exception) else err
            reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
            raise GraphCaptureFailed(
                f"recording the optimizer step as a CUDA graph failed ({reason}): train without "
                "recording, experimental.cuda_graphs: false (dvc exp run -S "
                "++experimental.cuda_graphs=false); the last checkpoint is kept"
            ) from err
        self.graph, self.outputs = graph, outputs
        graph.replay()
        return outputs

"""Progress on stderr: log callbacks for `fit` (a rich bar, fan-out to several callbacks) and a
file counter for jobs whose total is not known in advance (fetch of an image tree).

A log callback is `fn(step, metrics)`, called once per outer iteration with a 1-based step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:  # an annotation only: `gat predict` imports this module's bar columns without torch
    from gatcluster.training.fit import LogFn

# metric key -> label shown beside the bar; the last value seen of each stays on screen.
SHOWN_METRICS = {"loss/total": "loss", "acc": "acc"}


def count_columns() -> list:
    """The columns of every bar of a countable job: name, bar, done/total, elapsed, remaining."""
    name = TextColumn("{task.description}")
    return [name, BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]


class RateColumn(ProgressColumn):
    """The task's recent speed as a plain number and `unit` ("412 files/s"), blank before it has one."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        """The speed text of `task`."""
        return Text("" if task.speed is None else f"{task.speed:,.0f} {self.unit}")


@contextmanager
def file_counter(description: str) -> Iterator[Callable[[], None]]:
    """A line on stderr counting files as the yielded callback is called: count, rate, elapsed."""
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),  # pulses: the total is not known
        TextColumn("{task.completed} files"),
        RateColumn("files/s"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=None)
        yield lambda: bar.advance(task)


class ProgressLogger:
    """A progress bar on stderr that a training run advances through its log callback.

    Use as a context manager: `with ProgressLogger(100, "train") as bar: fit(..., log_fn=bar)`.
    """

    def __init__(self, total: int, description: str) -> None:
        self.total = total
        self._shown: dict[str, float] = {}
        self._progress = Progress(
            *count_columns(), TextColumn("{task.fields[metrics]}"), console=Console(stderr=True)
        )
        self._task = self._progress.add_task(description, total=total, metrics="")

    def __enter__(self) -> ProgressLogger:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        """Move the bar to `step` and show the latest loss/total and acc."""
        for key, label in SHOWN_METRICS.items():
            if key in metrics:
                self._shown[label] = metrics[key]
        text = "  ".join(f"{label} {value:.4g}" for label, value in self._shown.items())
        self._progress.update(self._task, completed=step, metrics=text)


def combine_loggers(*fns: LogFn | None) -> LogFn:
    """One log callback that calls each of `fns` in order (None entries are skipped)."""
    active = [fn for fn in fns if fn is not None]

    def log_all(step: int, metrics: dict[str, float]) -> None:
        for fn in active:
            fn(step, metrics)

    return log_all

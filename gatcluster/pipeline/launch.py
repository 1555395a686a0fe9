"""Starting the train stage in several processes on this machine, through torchrun's own launcher.

`dvc repro` runs `python stages/train.py`; with `train.processes` > 1 that script hands itself to
`torch.distributed.run` (what the `torchrun` command runs) with `--standalone --nproc-per-node N`,
waits, and turns a failed rank into one clear message and exit code. Launching across machines is
torchrun's job: run `torchrun --nnodes ... stages/train.py` on each (README, "Scaling out").
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gatcluster.exit_codes import EXIT_INTERRUPTED, EXIT_TERMINATED

# Set in the environment of the processes `launch_processes` starts: their launcher reports a
# Ctrl-C or a stop for all of them, so they exit without a message of their own (one line, not one
# per process), with 130 or 143, which it reads as such. Processes under a torchrun the user
# started do not have it.
LAUNCHED_BY_THE_STAGE = "GAT_LAUNCHED_BY_THE_STAGE"


@dataclass
class RankFailed(Exception):
    """One training process stopped with an error (the first one to fail); the others were stopped."""

    rank: int
    exit_code: int  # negative: killed by that signal

    @property
    def shell_exit_code(self) -> int:
        """What a shell reports for that process: its code, or 128 + the signal that killed it."""
        return 128 - self.exit_code if self.exit_code < 0 else self.exit_code

    def __str__(self) -> str:
        if self.exit_code < 0:
            how = f"was killed by {signal.Signals(-self.exit_code).name}"
        else:
            how = f"exited with code {self.exit_code} (its message is above)"
        return f"training process rank {self.rank} {how}; torchrun stopped the other processes"


class ProcessesInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the launched processes; `exit_code` is what a shell reports (130, 143)."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


def threads_per_process(processes: int) -> int:
    """CPU threads for each of `processes` training processes: the cores shared out, at least 1."""
    return max(1, (os.cpu_count() or 1) // processes)


def launched_by_the_stage(environ: Mapping[str, str]) -> bool:
    """Whether this process is one of those `launch_processes` started (its launcher reports stops)."""
    return environ.get(LAUNCHED_BY_THE_STAGE) == "1"


def launch_processes(script: Path, processes: int) -> None:
    """Run `script` in `processes` processes under torchrun on this machine; return when all succeed.

    Raises RankFailed for the first process that failed, ProcessesInterrupted when Ctrl-C or
    SIGTERM stopped them.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ[LAUNCHED_BY_THE_STAGE] = "1"
    # torchrun sets 1 thread per process, with a warning, unless told; share the cores out instead.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_process(processes)))
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={processes}", "--monitor-interval=0.5", str(script)]
    )
    try:
        run(args)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        if failure.exitcode in (EXIT_INTERRUPTED, -signal.SIGINT):
            raise ProcessesInterrupted(EXIT_INTERRUPTED) from None
        if failure.exitcode in (EXIT_TERMINATED, -signal.SIGTERM):  # a stop, not a failure
            raise ProcessesInterrupted(EXIT_TERMINATED) from None
        raise RankFailed(rank, failure.exitcode) from None
    except SignalException as err:
        code = EXIT_INTERRUPTED if err.sigval == signal.SIGINT else EXIT_TERMINATED
        raise ProcessesInterrupted(code) from None

"""DVC experiment copies: telling that a path lies in one, and not outliving the DVC process that owns it.

`dvc exp run --temp` and `dvc queue start` run the pipeline in a copy of the project under
`<project>/.dvc/tmp/exps/<copy>/`, which DVC deletes when the experiment ends. A stage there has one
owner, the DVC process that started it: when that process is killed (`dvc queue stop --kill`,
`dvc queue kill --force`: SIGKILL, which no handler sees), DVC deletes the copy half a second later,
and a stage left to itself read on from it and failed there: its run FAILED, with a traceback per
process, and nobody left to collect what it wrote.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path


def experiment_copy(path: Path) -> tuple[Path, Path] | None:
    """(the project, `path` relative to the copy) when `path` lies in a DVC experiment copy
    (`<project>/.dvc/tmp/exps/<copy>/...`); None elsewhere."""
    parts = path.resolve().parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i]), Path(*parts[i + 4 :])
    return None


def stop_when_parent_exits(signum: int = signal.SIGINT, interval: float = 1.0) -> None:
    """Send `signum` to this process as soon as its parent is gone.

    On Linux the kernel sends it the moment the parent dies (PR_SET_PDEATHSIG): DVC deletes the copy
    within half a second of its process being killed, and a stage still reading from it then fails
    with a traceback instead of stopping. Elsewhere a daemon thread watches the parent pid every
    `interval` seconds (a process whose parent exits is handed to init or a subreaper). The signal
    goes once, and its handler runs in the main thread, as it would for a `kill` from outside.
    SIGINT by default: torchrun passes it on to the processes it started, which then stop as on
    Ctrl-C; SIGTERM is what it sends when one of them failed. Only for stages that nothing but
    their parent waits for: a `nohup` run whose shell exits must go on.
    """
    parent = os.getppid()
    if kernel_signals_parent_death(signum):
        if os.getppid() != parent:  # the parent died before the kernel was asked
            os.kill(os.getpid(), signum)
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signum)

    threading.Thread(target=watch, name="stop-when-parent-exits", daemon=True).start()


PR_SET_PDEATHSIG = 1  # prctl(2) option: the signal this process gets when its parent dies


def kernel_signals_parent_death(signum: int) -> bool:
    """Ask Linux to send `signum` to this process when its parent dies; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False

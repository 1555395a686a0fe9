"""DVC experiment copies: telling that a path lies in one, and not outliving the DVC process that owns it.

`dvc exp run --temp` and `dvc queue start` run the pipeline in a copy of the project under
`<project>/.dvc/tmp/exps/<copy>/`, which DVC deletes when the experiment ends. A stage there has one
owner, the DVC process that started it: when that process is killed (`dvc queue stop --kill`,
`dvc queue kill --force`: SIGKILL, which no handler sees), the stage would train on alone in a copy
that is being deleted, with nobody left to collect what it writes.
"""

from __future__ import annotations

import os
import signal
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


def stop_when_parent_exits(signum: int = signal.SIGTERM, interval: float = 1.0) -> threading.Thread:
    """Watch this process's parent on a daemon thread; when it is gone, send `signum` to this process.

    A process whose parent exits is handed to another one (init or a subreaper), so a changed parent
    pid is the sign. The signal goes to this process once, and its handler runs in the main thread,
    as it would for a `kill` from outside: a stage stops the way SIGTERM stops it. Only for stages
    that nothing but their parent waits for: a `nohup` run whose shell exits must go on.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signum)

    watcher = threading.Thread(target=watch, name="stop-when-parent-exits", daemon=True)
    watcher.start()
    return watcher

"""Log lines of the libraries under the stages and the `gat` commands: quiet unless asked for.

MLflow and Alembic print INFO lines ("Creating initial MLflow database tables...", "View run ...
at") that would fill every stage's output, and MLflow's SQL store logs a traceback at ERROR before
it raises (a locked or damaged mlflow.db), which the caller's one-line message says already.
torchrun's agent (the train stage with `train.processes` > 1) logs its own lines on a stop
("Received 2 death signal", "failed (exitcode: -9) local_rank: 1"), which the stage's message says.
`GAT_VERBOSE=1` (`gat --verbose`) shows them all.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping

QUIET_LIBRARY_LOGGERS = ("mlflow", "alembic")  # warnings and errors only
SILENT_LIBRARY_LOGGERS = ("mlflow.store.db.utils",)  # nothing
TORCHRUN_LOGGER = "torch.distributed.elastic"


def quiet_library_logs() -> None:
    """Raise the libraries' log levels as the module docstring says."""
    for name in QUIET_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in SILENT_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def quiet_torchrun_logs(environ: MutableMapping[str, str]) -> None:
    """Silence torchrun's agent, unless the user set LOGLEVEL (they asked for its lines).

    Some of its loggers inherit the level of `torch.distributed.elastic`; the others take theirs
    from LOGLEVEL as its modules are imported, so it is set before the launcher is imported (and
    reaches the processes it starts).
    """
    if "LOGLEVEL" in environ:
        return
    environ["LOGLEVEL"] = "CRITICAL"
    logging.getLogger(TORCHRUN_LOGGER).setLevel(logging.CRITICAL)

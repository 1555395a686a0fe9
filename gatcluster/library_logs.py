"""Log lines of the libraries under the stages and the `gat` commands: quiet unless asked for.

MLflow and Alembic log INFO lines ("Creating initial MLflow database tables...") and MLflow writes
"View run ... at <url>" to stdout as a run on a tracking server ends (twice in the export stage)
that would fill every stage's output, and MLflow's SQL store logs a traceback at ERROR before
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


# MLflow's own switch for its "View run ... at <url>" lines; a value the user set is kept.
MLFLOW_RUN_URL_SWITCH = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


def quiet_library_logs(environ: MutableMapping[str, str]) -> None:
    """Raise the libraries' log levels and turn MLflow's run URL lines off in `environ` (the
    process's environment, read by MLflow as each run ends), as the module docstring says."""
    environ.setdefault(MLFLOW_RUN_URL_SWITCH, "true")
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

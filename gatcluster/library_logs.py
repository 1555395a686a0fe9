"""Log lines of the libraries under the stages and the `gat` commands: quiet unless asked for.

MLflow and Alembic print INFO lines ("Creating initial MLflow database tables...", "View run ...
at") that would fill every stage's output, and MLflow's SQL store logs a traceback at ERROR before
it raises (a locked or damaged mlflow.db), which the caller's one-line message says already.
`GAT_VERBOSE=1` (`gat --verbose`) shows them all.
"""

from __future__ import annotations

import logging

QUIET_LIBRARY_LOGGERS = ("mlflow", "alembic")  # warnings and errors only
SILENT_LIBRARY_LOGGERS = ("mlflow.store.db.utils",)  # nothing


def quiet_library_logs() -> None:
    """Raise the libraries' log levels as the module docstring says."""
    for name in QUIET_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in SILENT_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)

"""What every stage script shares: the project layout, params loading, error exits.

Stages are the only code that reads params.yaml and environment variables and chooses paths;
the library receives values and paths.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from gatcluster.telemetry import telemetry_off

telemetry_off()  # before MLflow, ONNX Runtime or DVC are imported by a stage

from gatcluster.atomic import WriteError  # noqa: E402
from gatcluster.config.loading import load_params  # noqa: E402
from gatcluster.config.params import Params, ParamsError  # noqa: E402
from gatcluster.config.validation import cut  # noqa: E402
from gatcluster.data.store import DatasetError  # noqa: E402
from gatcluster.dvc_copy import experiment_copy, stop_when_parent_exits  # noqa: E402
from gatcluster.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE  # noqa: E402
from gatcluster.library_logs import quiet_library_logs  # noqa: E402
from gatcluster.pipeline.errors import StageError  # noqa: E402
from gatcluster.pipeline.layout import ProjectLayout  # noqa: E402
from gatcluster.tracking.credentials import CredentialsUnreadable  # noqa: E402
from gatcluster.tracking.reachability import ServerUnreachable  # noqa: E402
from gatcluster.tracking.store_uri import is_server_uri, masked  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = ProjectLayout(ROOT)

__all__ = [
    "LAYOUT",
    "ROOT",
    "StageError",
    "exit_with",
    "interrupt_exit_code",
    "read_params",
    "run_stage",
    "verbose_requested",
]


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, systemd, Kubernetes, batch schedulers): handled exactly like Ctrl-C."""


def raise_terminated(signum: int, frame: object) -> None:
    """SIGTERM handler: unwind like Ctrl-C, so runs are closed and checkpoints kept."""
    raise Terminated


def interrupt_exit_code(err: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM: what a shell reports for either signal."""
    return EXIT_TERMINATED if isinstance(err, Terminated) else EXIT_INTERRUPTED


def read_params() -> Params:
    """The validated params of this project's params.yaml."""
    return load_params(LAYOUT.params_file)


def verbose_requested() -> bool:
    """GAT_VERBOSE=1: let libraries print their progress and INFO lines (quiet by default)."""
    return os.environ.get("GAT_VERBOSE", "") == "1"


def run_stage(main: Callable[[], None], failures: tuple[type[BaseException], ...] = ()) -> None:
    """Run `main`, turning user errors into a one-line message and an exit code, not a traceback.

    ParamsError and StageError exit 2 (usage), DatasetError, a failed write (a full disk:
    WriteError, the previous file kept), `failures`, a tracking server that takes no connection
    (ServerUnreachable), a credentials file MLflow cannot read (CredentialsUnreadable), MLflow
    errors (a server that refuses a request, a locked mlflow.db) and what the file system refuses
    (FILE_SYSTEM_REFUSALS) exit 1, Ctrl-C exits 130 and SIGTERM 143; anything
    else is a bug and keeps its traceback.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    if not verbose_requested():  # the stages' own INFO lines only: not MLflow's and its migrations'
        quiet_library_logs(os.environ)
    signal.signal(signal.SIGTERM, raise_terminated)
    if experiment_copy(ROOT) is not None:
        # Killing DVC (`dvc queue stop --kill`) leaves a stage in its copy alone, and DVC deletes the
        # copy under it: stop it as Ctrl-C would (its MLflow run KILLED, not FAILED with a traceback
        # per process). SIGINT handled even where it was inherited ignored, as a daemon's child may.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop_when_parent_exits(signal.SIGINT)
    try:
        main()
    except (ParamsError, StageError) as err:
        exit_with(f"error: {err}", EXIT_USAGE)
    except (DatasetError, WriteError, ServerUnreachable, CredentialsUnreadable, *failures) as err:
        exit_with(f"error: {err}", EXIT_FAILED)
    except KeyboardInterrupt as err:
        exit_with("interrupted", interrupt_exit_code(err))
    except Exception as err:
        if is_tracking_error(err):
            exit_with(tracking_error_message(err), EXIT_FAILED)
        if refused_by_the_file_system(err) and not verbose_requested():
            exit_with(f"error: {file_error_message(err)}", EXIT_FAILED)
        raise
    finally:
        # Exiting now, whichever way: a SIGTERM that arrives meanwhile (torchrun stopping the other
        # ranks after one failed) must not raise inside the interpreter's exit-time cleanup.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def is_tracking_error(err: Exception) -> bool:
    """Whether MLflow raised `err`, or its SQL store's driver did (a locked or damaged mlflow.db);
    neither can have if this stage never imported them."""
    exceptions, sql = sys.modules.get("mlflow.exceptions"), sys.modules.get("sqlalchemy.exc")
    return (exceptions is not None and isinstance(err, exceptions.MlflowException)) or (
        sql is not None and isinstance(err, sql.SQLAlchemyError)
    )


# What the file system refuses for reasons of the machine, not of the code: a folder without write
# permission, a read-only or full disk, a file where a folder should be (or the reverse), a name too
# long. Other OSErrors (a file gone, a bad descriptor, no memory) keep their traceback: a bug.
FILE_SYSTEM_REFUSALS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
}


def refused_by_the_file_system(err: BaseException) -> bool:
    """Whether `err` is one of FILE_SYSTEM_REFUSALS (GAT_VERBOSE=1 shows its traceback anyway)."""
    return isinstance(err, OSError) and err.errno in FILE_SYSTEM_REFUSALS


def file_error_message(err: OSError) -> str:
    """What the file system refused and where, in one line ("Permission denied: reports/x")."""
    names = [os.fsdecode(name) for name in (err.filename, err.filename2) if name is not None]
    where = ": " + " -> ".join(names) if names else ""
    return f"{err.strerror or err}{where}"


def tracking_error_message(err: Exception) -> str:
    """One line: what MLflow said, which store it was, and what to do."""
    said = cut((getattr(err, "message", None) or str(err)).strip().splitlines()[0], 200).rstrip(".")
    from gatcluster.tracking.mlflow_runs import resolve_tracking_uri  # MLflow is imported by now

    given = (os.environ.get("MLFLOW_TRACKING_URI") or "").strip()
    # The store the stage used: under `dvc exp run --queue/--temp` the project's, not the copy's.
    store = resolve_tracking_uri(given, ROOT)
    if not given:  # the project's own store: no server to check, no variable to unset
        return (
            f"error: MLflow tracking failed at {store}: {said}. GAT_VERBOSE=1"
            " shows MLflow's log; check that mlflow.db and mlartifacts/ are writable"
        )
    check = "that the tracking server runs (gat server)" if is_server_uri(store) else "that it can be written"
    return (
        f"error: MLflow tracking failed at {masked(store)}: {said}. Check {check}, or unset"
        " MLFLOW_TRACKING_URI to use the project's mlflow.db; then run again"
    )


def exit_with(message: str, code: int) -> NoReturn:
    """Print `message` on stderr and exit with `code`."""
    print(message, file=sys.stderr)
    raise SystemExit(code)

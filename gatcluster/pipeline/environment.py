"""The environment variables the stages read, checked before any stage sets its outputs aside.

GAT_THREADS (torch CPU threads) and MLFLOW_TRACKING_URI used to be read first by the train stage,
after `dvc repro` had removed the previous model and curves; the check stage and `gat check` now
say what is wrong with them first. Values are read by the caller (stage scripts, the CLI).
"""

from __future__ import annotations

from gatcluster.config.params import ParamsError
from gatcluster.config.validation import cut
from gatcluster.tracking.store_uri import masked, tracking_uri_problem

MAX_THREADS = 1024  # torch refuses far larger counts with a traceback of its own


class BadEnvironment(ParamsError):
    """An environment variable the stages read holds a value they cannot use (a usage error)."""


def check_environment(threads: str | None, tracking_uri: str | None, allow_file_store: bool) -> None:
    """BadEnvironment for GAT_THREADS or MLFLOW_TRACKING_URI values the later stages would stop on,
    after `dvc repro` had set their outputs aside (values read by the caller; `allow_file_store`:
    MLFLOW_ALLOW_FILE_STORE is true). Whether a server answers is the stages' to ask: the check
    stage runs before fetch too, which needs none."""
    threads_wanted(threads)
    uri = (tracking_uri or "").strip()
    if not uri:
        return  # the project's own mlflow.db
    if problem := tracking_uri_problem(uri, allow_file_store):  # no connection: data-only runs need none
        raise BadEnvironment(f"MLFLOW_TRACKING_URI {cut(masked(uri))} {problem}")


def threads_wanted(value: str | None) -> int | None:
    """GAT_THREADS as a count of torch CPU threads (None: unset, torch's default); BadEnvironment
    for anything but a positive whole number."""
    if not value:
        return None
    # ASCII digits: "²" passes str.isdigit but not int()
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_THREADS:
        raise BadEnvironment(
            f"GAT_THREADS must be a whole number from 1 to {MAX_THREADS}, got {cut(repr(value))}"
        )
    return int(value)

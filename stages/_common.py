"""What every stage script shares: project paths, params loading, error exits.

Stages are the only code that reads params.yaml and environment variables and chooses paths;
the library receives values and paths.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

# Telemetry of every dependency off unless the user turned it on explicitly.
for _name in ("DVC_NO_ANALYTICS", "ORT_DISABLE_TELEMETRY", "MLFLOW_DISABLE_TELEMETRY"):
    os.environ.setdefault(_name, "1")

from gatcluster.config import Params, ParamsError, load_params  # noqa: E402
from gatcluster.data.store import PROJECT_DATASET_DIR, DatasetError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = ROOT / "params.yaml"
DATASET_DIR = ROOT / PROJECT_DATASET_DIR
MODEL_RUN_FILE = ROOT / "models" / "run.json"  # train -> evaluate: the MLflow run of the model
REPORT_RUN_FILE = ROOT / "reports" / "run.json"  # evaluate -> export: the run actually used
CLUSTERS_FILE = ROOT / "reports" / "clusters.json"  # evaluate -> export: name and size per cluster

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143


class StageError(RuntimeError):
    """A problem the user can fix (a setting, a missing input); reported without a traceback."""


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
    return load_params(PARAMS_FILE)


def verbose_requested() -> bool:
    """GAT_VERBOSE=1: let libraries print their progress and INFO lines (quiet by default)."""
    return os.environ.get("GAT_VERBOSE", "") == "1"


def relative(path: Path) -> str:
    """`path` relative to the project root when inside it, for short messages."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_stage(main: Callable[[], None], failures: tuple[type[BaseException], ...] = ()) -> None:
    """Run `main`, turning user errors into a one-line message and an exit code, not a traceback.

    ParamsError and StageError exit 2 (usage), DatasetError and `failures` exit 1,
    Ctrl-C exits 130 and SIGTERM 143; anything else is a bug and keeps its traceback.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        main()
    except (ParamsError, StageError) as err:
        exit_with(f"error: {err}", EXIT_USAGE)
    except (DatasetError, *failures) as err:
        exit_with(f"error: {err}", EXIT_FAILED)
    except KeyboardInterrupt as err:
        exit_with("interrupted", interrupt_exit_code(err))


def exit_with(message: str, code: int) -> NoReturn:
    """Print `message` on stderr and exit with `code`."""
    print(message, file=sys.stderr)
    raise SystemExit(code)

"""What the benchmark scripts share on their command line: counts that must be positive, and the
library's errors (a bad --set or --params, a damaged data copy or checkpoint) said in one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (iterations, threads, jobs)."""
    value = int(text)  # argparse reports a ValueError as "invalid positive_int value"
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not 1 or more")
    return value


def run_main(main: Callable[[], None]) -> None:
    """Run a script's `main`; the library's own errors end it with `error: ...` (exit 2), not a
    traceback: they name what to fix, and the rest of the stack says nothing more."""
    from gatcluster.config.params import ParamsError
    from gatcluster.data.store import DatasetError
    from gatcluster.training.checkpoint import CheckpointError

    try:
        main()
    except (ParamsError, DatasetError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)

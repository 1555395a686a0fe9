"""DVC stage `check`: validate the whole params.yaml against the data before any stage runs.

Usage: python stages/check.py   (reads every key of params.yaml; `gat check` runs the same checks)

A bad param stops `dvc repro` here, before DVC deletes the previous model, curves and reports.
The work is `gatcluster.pipeline.check_stage.run_check`; this script reads params.yaml.
"""

from __future__ import annotations

import os

from _common import LAYOUT, read_params, run_stage

from gatcluster.pipeline.check_stage import run_check
from gatcluster.pipeline.environment import check_environment
from gatcluster.pipeline.preflight import PreflightError
from gatcluster.tracking.store_uri import file_store_allowed


def main() -> None:
    """Validate params.yaml (schema, then data size where it is known) and the environment the
    later stages read (GAT_THREADS, MLFLOW_TRACKING_URI), and record that they passed."""
    env = os.environ
    check_environment(
        env.get("GAT_THREADS"),
        env.get("MLFLOW_TRACKING_URI"),
        file_store_allowed(env.get("MLFLOW_ALLOW_FILE_STORE")),
    )
    print(run_check(read_params(), LAYOUT))


if __name__ == "__main__":
    run_stage(main, failures=(PreflightError,))

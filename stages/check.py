"""DVC stage `check`: validate the whole params.yaml against the data before any stage runs.

Usage: python stages/check.py   (reads every key of params.yaml; `gat check` runs the same checks)

A bad param stops `dvc repro` here, before DVC deletes the previous model, curves and reports.
The work is `gatcluster.pipeline.check_stage.run_check`; this script reads params.yaml.
"""

from __future__ import annotations

from _common import LAYOUT, read_params, run_stage

from gatcluster.pipeline.check_stage import run_check
from gatcluster.pipeline.preflight import PreflightError


def main() -> None:
    """Validate params.yaml (schema, then data size where it is known) and record that it passed."""
    print(run_check(read_params(), LAYOUT))


if __name__ == "__main__":
    run_stage(main, failures=(PreflightError,))

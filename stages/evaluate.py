"""DVC stage `evaluate`: score the trained model on its data set and draw its attention maps.

Usage: python stages/evaluate.py   (reads params.yaml: seed, evaluate)

The work is `gatcluster.pipeline.evaluate_stage.run_evaluate` (what it reads and writes is listed
there); this script reads params.yaml and MLFLOW_TRACKING_URI / DVC_EXP_NAME from the environment.
"""

from __future__ import annotations

import os

from _common import LAYOUT, read_params, run_stage

from gatcluster.pipeline.evaluate_stage import run_evaluate
from gatcluster.training.checkpoint import CheckpointError


def main() -> None:
    """Evaluate the trained model in its MLflow run."""
    uri, exp_name = os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("DVC_EXP_NAME", "")
    print(run_evaluate(read_params(), LAYOUT, uri, exp_name))


if __name__ == "__main__":
    run_stage(main, failures=(CheckpointError,))

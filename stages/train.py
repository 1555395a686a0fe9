"""DVC stage `train`: fit GATCluster on data/dataset/ and write the model and training reports.

Usage: python stages/train.py   (reads params.yaml: seed, data, model, train, augment, mlflow)

The work is `gatcluster.pipeline.train_stage.run_train`; this script reads params.yaml and the
environment: GAT_THREADS=<n> (CPU threads), MLFLOW_TRACKING_URI, DVC_EXP_NAME (set by DVC).
Ctrl-C or SIGTERM marks the MLflow run KILLED and keeps the checkpoint: run again to resume.
"""

from __future__ import annotations

import os

import torch
from _common import LAYOUT, StageError, exit_with, interrupt_exit_code, read_params, run_stage

from gatcluster.pipeline.train_stage import interrupted_message, run_train
from gatcluster.training.checkpoint import CheckpointError
from gatcluster.training.fit import TrainingSetupError
from gatcluster.training.trainer import TrainingDiverged


def set_threads() -> None:
    """Apply GAT_THREADS (number of torch CPU threads) when it is set."""
    value = os.environ.get("GAT_THREADS")
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise StageError(f"GAT_THREADS must be a positive integer, got {value!r}")
    torch.set_num_threads(int(value))


def main() -> None:
    """Train under an MLflow run; on Ctrl-C or SIGTERM say what was kept and how to resume."""
    params = read_params()
    set_threads()
    try:
        print(
            run_train(
                params, LAYOUT, os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("DVC_EXP_NAME", "")
            )
        )
    except KeyboardInterrupt as err:  # the run is already KILLED; the checkpoint is kept
        exit_with(interrupted_message(LAYOUT), interrupt_exit_code(err))


if __name__ == "__main__":
    run_stage(main, failures=(TrainingDiverged, TrainingSetupError, CheckpointError))

"""MLflow set-up shared by the stages: the project's store, experiment per dataset, run tags.

`MLFLOW_TRACKING_URI` overrides the store; otherwise it is the SQLite file of the main worktree,
so `dvc exp run --temp/--queue` (which run in a copy under .dvc/tmp/exps) land there too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
from _common import ROOT
from mlflow.tracking import MlflowClient

from gatcluster.config import Params
from gatcluster.run_liveness import close_dead_runs
from gatcluster.tracking import default_tracking_uri, experiment_id, git_state, main_worktree_root

log = logging.getLogger("tracking")


@dataclass(frozen=True)
class Tracking:
    """A client on the project's store and the experiment of this run's dataset."""

    client: MlflowClient
    experiment_id: str
    uri: str


def open_tracking(params: Params) -> Tracking:
    """Connect to the store and get (or create) the experiment for `params`."""
    main_root = main_worktree_root(ROOT)
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(main_root)
    client = MlflowClient(tracking_uri=uri)
    name = params.mlflow.experiment or f"gatcluster-{params.data.source}"
    tracking = Tracking(client, experiment_id(client, name, main_root / "mlartifacts"), uri)
    for run_id in close_dead_runs(client, tracking.experiment_id):
        log.warning("closed MLflow run %s as KILLED: its process had ended without closing it", run_id)
    return tracking


def run_tags(data_checksum: str, device: str) -> dict[str, str]:
    """Tags of every run: code version, DVC experiment, data, device, torch version."""
    commit, dirty = git_state(ROOT)
    return {
        "mlflow.source.git.commit": commit,
        "git.commit": commit,
        "git.dirty": str(dirty).lower(),
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "data.checksum": data_checksum,
        "device": device,
        "torch.version": torch.__version__,
    }

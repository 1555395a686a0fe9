"""MLflow set-up of the pipeline stages: the project's store, one experiment per data set, run tags.

The store is `MLFLOW_TRACKING_URI` when the stage script passes one, else the SQLite file of the
main worktree, so `dvc exp run --temp/--queue` (which run in a copy under .dvc/tmp/exps) land there too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient

from gatcluster.config.params import Params
from gatcluster.pipeline.errors import StageError
from gatcluster.pipeline.layout import ProjectLayout
from gatcluster.tracking.credentials import check_credentials_file
from gatcluster.tracking.liveness import close_dead_runs
from gatcluster.tracking.mlflow_runs import (
    artifact_root_for,
    experiment_id,
    git_state,
    main_worktree_root,
    resolve_tracking_uri,
)
from gatcluster.tracking.reachability import check_server_answers
from gatcluster.tracking.store_lock import one_store_opener_at_a_time
from gatcluster.tracking.store_uri import is_server_uri, masked, sqlite_uri_file_problem

log = logging.getLogger("tracking")


@dataclass(frozen=True)
class Tracking:
    """A client on the project's store and the experiment of this run's data set."""

    client: MlflowClient
    experiment_id: str
    uri: str


def open_tracking(params: Params, project_root: Path, uri_override: str | None) -> Tracking:
    """Connect to the store, get (or create) the experiment for `params`, close runs of dead processes.

    A remote server that takes no connection is a ServerUnreachable at once, a credentials file
    MLflow cannot read a CredentialsUnreadable."""
    main_root = main_worktree_root(project_root)
    uri = resolve_tracking_uri(uri_override, project_root)
    check_server_answers(uri)  # ServerUnreachable in seconds, not after MLflow's minutes of retries
    check_store_file(uri)  # likewise for a SQLite file no database can be made at
    check_credentials_file(uri)  # CredentialsUnreadable in one line, not a traceback mid-request
    name = params.mlflow.experiment or f"gatcluster-{params.data.source}"
    artifact_root = artifact_root_for(uri, ProjectLayout(main_root).artifact_root)
    with one_store_opener_at_a_time(uri):  # the client creates a new store's tables
        client = MlflowClient(tracking_uri=uri)
        tracking = Tracking(client, experiment_id(client, name, artifact_root), uri)
    check_artifacts_reachable(tracking, name)
    for run_id in close_dead_runs(client, tracking.experiment_id):
        log.warning("closed MLflow run %s as KILLED: its process had ended without closing it", run_id)
    return tracking


def check_store_file(uri: str) -> None:
    """A StageError at once for a `sqlite:///` store no database can be opened or made at (a folder,
    a FIFO, a path below a file): MLflow retried it for two minutes. The check stage says so too,
    but DVC reruns it only when params or its code change."""
    if problem := sqlite_uri_file_problem(uri):
        raise StageError(f"the MLflow store {masked(uri)} cannot be used: {problem}")


def check_artifacts_reachable(tracking: Tracking, name: str) -> None:
    """A StageError when the experiment keeps its artifacts behind a tracking server that this
    store is opened without: an experiment created through `gat server` on the project's own
    mlflow.db, then used with MLFLOW_TRACKING_URI unset (MLflow fails at the first artifact)."""
    if is_server_uri(tracking.uri):
        return
    location = tracking.client.get_experiment(tracking.experiment_id).artifact_location
    if location.startswith("mlflow-artifacts:"):
        raise StageError(
            f"MLflow experiment {name!r} in {tracking.uri} keeps its artifacts on a tracking server"
            f" ({location}): run with MLFLOW_TRACKING_URI at that server (gat server), or set"
            " mlflow.experiment to another name to track here without one"
        )


def code_version(layout: ProjectLayout) -> tuple[str, bool]:
    """(git commit, whether the project's code or params differ from it) for a run's provenance:
    what the run itself rewrites (`layout.rewritten_by_runs`) does not count."""
    return git_state(layout.root, layout.rewritten_by_runs)


def run_tags(layout: ProjectLayout, data_checksum: str, device: str, exp_name: str) -> dict[str, str]:
    """Tags of every run: code version, DVC experiment name, data, device, torch version."""
    commit, dirty = code_version(layout)
    return {
        "mlflow.source.git.commit": commit,
        "git.commit": commit,
        "git.dirty": str(dirty).lower(),
        "dvc.exp_name": exp_name,
        "data.checksum": data_checksum,
        "device": device,
        "torch.version": torch.__version__,
    }

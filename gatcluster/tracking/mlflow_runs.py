"""MLflow tracking: where the store lives, one run per trained model, and its hand-off between stages.

The train stage opens the run and writes its id to a small run file; evaluate and export reopen it,
so one MLflow run holds one model with its curves, scores and ONNX file. Functions receive the
tracking URI, paths and values; only stage scripts and the CLI read environment variables.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gatcluster.atomic import write_json_atomic
from gatcluster.dvc_copy import experiment_copy
from gatcluster.tracking.liveness import process_tags

MAX_BATCH = 100  # MLflow's log_batch limit on params (and a sensible chunk for metrics)
ORIGINAL_RUN_TAG = "gatcluster.original_run_id"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"


def default_tracking_uri(project_root: Path) -> str:
    """SQLite store at an absolute path in the project (the file store is deprecated in MLflow 3)."""
    return f"sqlite:///{(project_root.resolve() / 'mlflow.db').as_posix()}"


# sqlite:///<relative path>[?options]; sqlite:////abs has a fourth slash, and :memory: is no file.
RELATIVE_SQLITE = re.compile(r"sqlite:///(?P<path>(?!/|:memory:)[^?]+)(?P<query>\?.*)?")


def resolve_tracking_uri(override: str | None, path: Path) -> str:
    """The store every stage and command uses: `override` (MLFLOW_TRACKING_URI, read by the caller;
    blank counts as unset) or the SQLite file of the project that `path` belongs to
    (`main_worktree_root`). Inside a DVC experiment copy (`dvc exp run --temp/--queue`, under
    .dvc/tmp/exps, deleted afterwards) a relative SQLite path is taken in the project itself: a
    store made in the copy went with the runs and registered versions in it. Elsewhere it stays
    relative to the current folder, as MLflow reads it."""
    override = (override or "").strip()
    if not override:
        return default_tracking_uri(main_worktree_root(path))
    relative, copy = RELATIVE_SQLITE.fullmatch(override), experiment_copy(path)
    if relative is None or copy is None:
        return override
    project, inside = copy
    store = (project / inside / relative["path"]).as_posix()
    return f"sqlite:///{store}{relative['query'] or ''}"


def main_worktree_root(path: Path) -> Path:
    """The project that `path` belongs to, also from inside DVC's experiment copies.

    Linked git worktrees share the main one's git dir; `dvc exp run --temp/--queue` runs in a
    separate repository under `<project>/.dvc/tmp/exps/`, so that prefix names the project.
    """
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=path,
            capture_output=True,
            text=True,
            check=True,
        )
        root = Path(out.stdout.strip()).parent
    except (OSError, subprocess.CalledProcessError):
        root = path.resolve()
    copy = experiment_copy(root)
    return root if copy is None else copy[0]


def git_state(path: Path, ignored: Sequence[Path] = ()) -> tuple[str, bool]:
    """(commit sha or "unknown", whether tracked files have uncommitted changes), changes to the
    files or folders `ignored` aside (what a run itself rewrites: DVC's lock file and its reports)."""
    excluded = [f":(exclude){os.path.relpath(p, path)}" for p in ignored]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded],
            cwd=path,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    return sha.stdout.strip(), bool(status.stdout.strip())


def artifact_root_for(tracking_uri: str, local_root: Path) -> Path | None:
    """Where new experiments keep artifacts: `local_root` for a local store; for a tracking server,
    None: the server's own (proxied) store, so that every client reaches them over HTTP."""
    if tracking_uri.split(":", 1)[0] in ("http", "https"):
        return None
    return local_root


def experiment_id(client: MlflowClient, name: str, artifact_root: Path | None) -> str:
    """The id of experiment `name`, created if new with artifacts under `artifact_root/name` (None:
    where the tracking server puts them)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None if artifact_root is None else (artifact_root.resolve() / name).as_uri()
    try:
        # The kind tag makes the MLflow 3 UI open on runs (model training), not on GenAI traces.
        return client.create_experiment(
            name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: "custom_model_development"}
        )
    except MlflowException as err:
        # Another process (a queued experiment beside this one, a teammate) created it meanwhile.
        if (
            err.error_code != "RESOURCE_ALREADY_EXISTS"
            or (found := client.get_experiment_by_name(name)) is None
        ):
            raise
        return found.experiment_id


def start_run(client: MlflowClient, exp_id: str, run_name: str, tags: dict[str, str]) -> str:
    """A new RUNNING run; returns its id."""
    return client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id


def log_params(client: MlflowClient, run_id: str, flat: dict[str, Any]) -> None:
    """Log flat params (dotted params.yaml names) in batches; lists and None as text."""
    items = [Param(key, str(value)) for key, value in flat.items()]
    for start in range(0, len(items), MAX_BATCH):
        client.log_batch(run_id, params=items[start : start + MAX_BATCH])


def log_stage_params(client: MlflowClient, run_id: str, flat: dict[str, Any]) -> dict[str, str]:
    """Log the params a stage used to its run; the ones whose logged value differs, as text.

    MLflow params cannot change, yet evaluate and export re-run on the same run when only their
    own settings changed: the values they used then go to `used.<key>` tags, so the run says what ran.
    """
    run = client.get_run(run_id)
    logged, tags = run.data.params, run.data.tags
    log_params(client, run_id, {k: v for k, v in flat.items() if k not in logged})
    changed = {k: str(v) for k, v in flat.items() if k in logged and logged[k] != str(v)}
    used = {f"used.{k}": str(v) for k, v in flat.items() if k in changed or f"used.{k}" in tags}
    if used:
        set_tags(client, run_id, used)
    return changed


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    """Log numeric metrics at `step` in one batch call."""
    now = int(time.time() * 1000)
    items = [Metric(key, float(value), now, step) for key, value in metrics.items()]
    for start in range(0, len(items), MAX_BATCH):
        client.log_batch(run_id, metrics=items[start : start + MAX_BATCH])


def set_tags(client: MlflowClient, run_id: str, tags: dict[str, str]) -> None:
    """Set several tags in one call."""
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def metric_logger(client: MlflowClient, run_id: str):
    """A `fit` log callback that sends each iteration's metrics with `step=`."""

    def log(step: int, metrics: dict[str, float]) -> None:
        log_metrics(client, run_id, metrics, step)

    return log


def run_exists(client: MlflowClient, run_id: str) -> bool:
    """Whether this store holds an undeleted run `run_id`."""
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


@contextmanager
def active_run(client: MlflowClient, run_id: str) -> Iterator[str]:
    """Mark the run RUNNING; on exit FINISHED, KILLED on Ctrl-C, FAILED on any error (then re-raise).

    The run is tagged with this process (host, pid, boot id), so a run left RUNNING by a process
    that died without a word is recognised and closed by the next stage (`close_dead_runs`).
    """
    set_tags(client, run_id, process_tags())
    client.update_run(run_id, status="RUNNING")
    try:
        yield run_id
    except KeyboardInterrupt:
        client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FINISHED))


def write_run_file(path: Path, run_id: str, exp_id: str, extra: dict[str, str] | None = None) -> None:
    """The run hand-off file (e.g. models/run.json) that later stages reopen."""
    write_json_atomic(path, {"run_id": run_id, "experiment_id": exp_id, **(extra or {})})


def read_run_file(path: Path) -> dict[str, str] | None:
    """The content of a run file, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "run_id" in data else None


def reopen_run(client: MlflowClient, run_file: Path, exp_id: str, run_name: str, tags: dict[str, str]) -> str:
    """The run named in `run_file`; a new run tagged with the original id when this store lacks it.

    That happens when DVC restored the trained model from its run-cache or from another machine.
    """
    info = read_run_file(run_file)
    if info is not None and run_exists(client, info["run_id"]):
        return info["run_id"]
    original = {ORIGINAL_RUN_TAG: info["run_id"]} if info else {}
    return start_run(client, exp_id, run_name, {**tags, **original})

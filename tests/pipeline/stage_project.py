"""Helpers shared by the pipeline tests: a DVC project of the pipeline's files with tiny params,
the stage processes' environment, and readers of its MLflow store and reports."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# One monitoring pass, at the last iteration: each pass refits BatchNorm and scores all 1,797 digits,
# which cost a train stage more than its two iterations (eval_every 1 made it 2 s of a 15 s stage).
TINY = {
    "data": {"source": "digits"},
    "train": {"iterations": 2, "large_batch": 200, "sub_batch": 32, "eval_every": 2, "checkpoint_every": 1},
    "mlflow": {"system_metrics_every": 1},  # a few samples in a run of a few seconds
}


def stage_env(project: Path) -> dict[str, str]:
    """The venv first on PATH (DVC runs `python ...` through the shell), the project's own code."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(project),
        "DVC_NO_ANALYTICS": "1",
        "GAT_THREADS": os.environ.get("GAT_THREADS", "1"),
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }


def run(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command in `project` (default environment: `stage_env`); output captured as text."""
    return subprocess.run(
        args, cwd=project, env=env or stage_env(project), capture_output=True, text=True, timeout=600
    )


def dvc(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the venv's dvc; fail the test with its output when it fails."""
    done = run(project, str(BIN / "dvc"), *args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def write_params(project: Path, overrides: dict) -> None:
    """The repository's params.yaml with nested `overrides` merged in."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for block, values in overrides.items():
        params[block].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def copy_project(dest: Path) -> Path:
    """The pipeline's files (stages, package, dvc.yaml, .dvcignore) in a fresh folder."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("stages", "gatcluster"):
        shutil.copytree(REPO / folder, dest / folder, ignore=skip)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, dest / name)
    return dest


def mlflow_runs(project: Path) -> tuple[MlflowClient, list]:
    """All runs of the digits experiment in the project's own store."""
    client = MlflowClient(tracking_uri=f"sqlite:///{project.resolve()}/mlflow.db")
    experiment = client.get_experiment_by_name("gatcluster-digits")
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def read_history(project: Path) -> list[dict[str, str]]:
    with open(project / "reports" / "train" / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def fetch_in_process(root: Path) -> None:
    """The fetch stage's work without a process start (its own process is tested by the repro)."""
    from gatcluster.config.loading import load_params
    from gatcluster.pipeline.fetch_stage import run_fetch
    from gatcluster.pipeline.layout import ProjectLayout

    run_fetch(load_params(root / "params.yaml"), ProjectLayout(root))


def default_sigint() -> None:
    """Let the child take Ctrl-C even when this process ignores it.

    A shell starts background jobs (`cmd &`) with SIGINT ignored, and an ignored signal stays
    ignored across exec, so the stage would never see the test's SIGINT.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train_until_first_checkpoint(root: Path, env: dict[str, str], **popen: object) -> subprocess.Popen:
    """The train stage started in `root` (output captured), returned once it wrote a checkpoint."""
    train = subprocess.Popen(
        [sys.executable, "stages/train.py"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )
    checkpoint = root / "checkpoints" / "train" / "last.pt"
    while not checkpoint.exists() and train.poll() is None:
        time.sleep(0.1)
    return train


def digit_photos(folder: Path, dataset, count: int) -> Path:
    """`count` real digits as PNG files with non-ASCII names, in `folder`."""
    from PIL import Image

    folder.mkdir()
    for i in range(count):
        Image.fromarray(dataset.images[i][..., 0]).save(folder / f"chiffre é {i}.png")
    return folder


def gat_in(project: Path, monkeypatch, cache: Path, *args: str):
    """`gat ARGS` run in-process (CliRunner) from `project`, as a user there would; the result."""
    from typer.testing import CliRunner

    from gatcluster.cli.app import app

    monkeypatch.chdir(project)  # the project's store is found from the working folder
    monkeypatch.setenv("GAT_CACHE_DIR", str(cache))
    return CliRunner().invoke(app, list(args))

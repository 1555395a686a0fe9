"""Faults at every stage, through real processes: kill -9 in the middle of fetch, evaluate,
export and `gat predict --out`, then a re-run; a full disk while writing a checkpoint, the ONNX
model and a prediction table.

Every case checks what the README's fault table promises: a re-run completes, no half-written
output is ever taken as finished, no MLflow run stays RUNNING, and a full disk is one clear line
with the previous file kept. The full-disk cases mount a small tmpfs (root only; skipped with the
reason elsewhere).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gatcluster.exit_codes import EXIT_TERMINATED

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage_project import BIN, TINY, copy_project, fetch_in_process, run, stage_env, write_params  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A project after fetch, train, evaluate and export with the tiny params."""
    from gatcluster.config.loading import load_params
    from gatcluster.pipeline.evaluate_stage import run_evaluate
    from gatcluster.pipeline.export_stage import run_export
    from gatcluster.pipeline.layout import ProjectLayout
    from gatcluster.pipeline.train_stage import run_train

    root = copy_project(tmp_path_factory.mktemp("faults"))
    write_params(root, TINY)
    fetch_in_process(root)
    # the stages' own work, in this process (their processes are what the tests below start)
    params, layout = load_params(root / "params.yaml"), ProjectLayout(root)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        run_train(params, layout, None, "")
        run_evaluate(params, layout, None, "")
        run_export(params, layout, None, "", verbose=False)
    finally:
        import mlflow

        mlflow.set_tracking_uri(
            before
        )  # export sets it process-wide: the stage processes must not inherit it
    assert os.environ.get("MLFLOW_TRACKING_URI") == before
    return root


@pytest.fixture
def project(trained, tmp_path) -> Path:
    """A fresh copy of the trained project for one test."""
    return Path(shutil.copytree(trained, tmp_path / "project", symlinks=True))


def run_statuses(root: Path) -> list[str]:
    """The status of every MLflow run in the project's store (read without MLflow)."""
    with sqlite3.connect(root / "mlflow.db") as db:
        return [row[0] for row in db.execute("SELECT status FROM runs ORDER BY start_time")]


def start(root: Path, *args: str) -> subprocess.Popen:
    """A command started in `root` with the stages' environment, output captured."""
    return subprocess.Popen(
        args, cwd=root, env=stage_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def kill_when(
    process: subprocess.Popen, ready: Callable[[], bool], what: str, sig: int = signal.SIGKILL
) -> int:
    """Send `sig` (SIGKILL unless said) to `process` as soon as `ready()` holds; its exit status.
    Fails if it finished first, or when SIGKILL did not end it."""
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None, f"finished before {what}: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"never reached {what}"
        time.sleep(0.01)
    process.send_signal(sig)
    process.wait(timeout=60)
    assert sig != signal.SIGKILL or process.returncode == -signal.SIGKILL
    return process.returncode


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders of atomic writes (hidden names) in `folder`."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_pngs(folder: Path, count: int) -> Path:
    """`count` distinct small greyscale PNGs in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(count).integers(0, 256, (count, 12, 12), dtype=np.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"{i:05d}.png", compress_level=0)
    return folder


@contextmanager
def tiny_disk(path: Path, size: int) -> Iterator[Path]:
    """A tmpfs of `size` bytes mounted on `path` for the block (skips the test where none can be)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here ({mounted.stderr.strip()}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# ---------- kill -9, then run again ----------


def test_fetch_killed_mid_way_keeps_the_previous_data_set_and_a_rerun_completes(project):
    before = json.loads((project / "data" / "dataset" / "manifest.json").read_text())
    write_pngs(project / "imgs", 4000)
    write_params(project, {**TINY, "data": {"source": "folder", "root": "imgs"}})
    fetch = start(project, sys.executable, "stages/fetch.py")

    def decoding() -> bool:  # the scratch array of the decoded images is open
        fds = Path(f"/proc/{fetch.pid}/fd")
        try:
            return any("(deleted)" in os.readlink(fd) for fd in fds.iterdir())
        except OSError:
            return False

    kill_when(fetch, decoding, "decoding the image folder")
    assert json.loads((project / "data" / "dataset" / "manifest.json").read_text()) == before
    done = run(project, sys.executable, "stages/fetch.py")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((project / "data" / "dataset" / "manifest.json").read_text())
    assert manifest["source"] == "folder" and manifest["count"] == 4000
    assert leftovers(project / "data") == [] and list((project / "data" / "raw").iterdir()) == []


@pytest.mark.parametrize("stage", ["evaluate", "export"])
def test_a_stage_killed_mid_way_leaves_complete_outputs_and_a_rerun_closes_its_run(project, stage):
    onnx_before = sha256(project / "models" / "gatcluster.onnx")
    process = start(project, sys.executable, f"stages/{stage}.py")
    kill_when(process, lambda: run_statuses(project) == ["RUNNING"], f"{stage} opened its MLflow run")
    assert run_statuses(project) == ["RUNNING"]  # nobody could close it: no handler runs on SIGKILL
    for report in (project / "reports").rglob("*.json"):
        json.loads(report.read_text())  # every report is complete, old or new
    onnx = project / "models" / "gatcluster.onnx"
    assert sha256(onnx) == onnx_before or onnx.stat().st_size > 0

    done = run(project, sys.executable, f"stages/{stage}.py")
    assert done.returncode == 0, done.stderr
    assert "closed MLflow run" in done.stderr
    assert run_statuses(project) == ["FINISHED"]
    assert leftovers(project / "models") == [] and leftovers(project / "reports") == []


def test_gat_predict_killed_mid_way_keeps_the_previous_table_and_a_rerun_completes(project, tmp_path):
    model = project / "models" / "gatcluster.onnx"
    out = tmp_path / "out" / "clusters.csv"
    gat = [str(BIN / "gat"), "predict", "--model", str(model), "--out", str(out)]
    first = run(project, *gat[:2], str(write_pngs(tmp_path / "few", 5)), *gat[2:])
    assert first.returncode == 0, first.stderr
    previous = out.read_text()
    predict = start(project, *gat[:2], str(write_pngs(tmp_path / "many", 3000)), *gat[2:])
    kill_when(predict, lambda: leftovers(out.parent) != [], "the table was being written")
    assert out.read_text() == previous
    for name in leftovers(out.parent):  # what SIGKILL leaves (the next run removes it too)
        (out.parent / name).unlink()
    # SIGTERM (`kill PID`, a scheduler) stops it as Ctrl-C does: its temporary goes, exit 143.
    predict = start(project, *gat[:2], str(tmp_path / "many"), *gat[2:])
    code = kill_when(
        predict, lambda: leftovers(out.parent) != [], "the table was being written", signal.SIGTERM
    )
    assert code == EXIT_TERMINATED and leftovers(out.parent) == [] and out.read_text() == previous
    done = run(project, *gat[:2], str(tmp_path / "many"), *gat[2:])
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 3001 and leftovers(out.parent) == []


# ---------- a full disk ----------


def test_a_full_disk_while_checkpointing_fails_in_one_line_and_keeps_the_last_checkpoint(project):
    import torch

    size = (project / "checkpoints" / "train" / "last.pt").stat().st_size
    shutil.rmtree(project / "checkpoints")
    with tiny_disk(project / "checkpoints", int(size * 1.6)):  # one checkpoint fits, not two
        done = run(project, sys.executable, "stages/train.py")
        assert done.returncode == 1 and "Traceback" not in done.stderr
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: cannot write {project / 'checkpoints' / 'train' / 'last.pt'}: ")
        assert line.endswith("No space left on device; the previous last.pt is kept")
        kept = torch.load(project / "checkpoints" / "train" / "last.pt", weights_only=True)
        assert kept["iteration"] == 1
        assert leftovers(project / "checkpoints" / "train") == []
    assert run_statuses(project)[-1] == "FAILED"


def test_a_full_disk_while_exporting_fails_in_one_line_and_keeps_the_previous_model(project, tmp_path):
    models = project / "models"
    saved = Path(shutil.copytree(models, tmp_path / "models-before"))
    onnx_size = (models / "gatcluster.onnx").stat().st_size
    total = sum(p.stat().st_size for p in saved.rglob("*") if p.is_file())
    shutil.rmtree(models)
    with tiny_disk(models, total + onnx_size // 2 + 64 * 1024):  # room for part of a second model
        for item in saved.iterdir():
            shutil.copy2(item, models / item.name)
        done = run(project, sys.executable, "stages/export.py")
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1] == (
            f"error: cannot write {models / 'gatcluster.onnx'}: No space left on device; "
            "the previous gatcluster.onnx is kept"
        )
        assert sha256(models / "gatcluster.onnx") == sha256(saved / "gatcluster.onnx")
        assert leftovers(models) == []
    assert "RUNNING" not in run_statuses(project)


def test_a_full_disk_while_writing_a_table_fails_in_one_line_and_keeps_the_previous_one(project, tmp_path):
    model = project / "models" / "gatcluster.onnx"
    with tiny_disk(tmp_path / "out", 64 * 1024) as disk:
        out = disk / "clusters.csv"
        gat = [str(BIN / "gat"), "predict", "--model", str(model), "--out", str(out)]
        first = run(project, *gat[:2], str(write_pngs(tmp_path / "few", 5)), *gat[2:])
        assert first.returncode == 0, first.stderr
        previous = out.read_text()
        done = run(project, *gat[:2], str(write_pngs(tmp_path / "many", 2000)), *gat[2:])
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1] == (
            f"error: cannot write {out}: No space left on device; the previous clusters.csv is kept"
        )
        assert out.read_text() == previous and leftovers(disk) == []

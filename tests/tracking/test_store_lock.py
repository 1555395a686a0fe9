"""One process at a time opens a new SQLite store: two stages starting together on a fresh clone
(`dvc queue start -j 2`) both get a working store, and the lock is held only for SQLite files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gatcluster.tracking.mlflow_runs import default_tracking_uri
from gatcluster.tracking.store_lock import one_store_opener_at_a_time

fcntl = pytest.importorskip("fcntl")  # flock: not on Windows, where stages take no lock
REPO = Path(__file__).resolve().parents[2]
# Each process imports MLflow first, then waits for the go file, so that both create the tables at
# the same moment: without the lock one of them failed 3 times in 3 ("table ... already exists").
OPEN_A_NEW_STORE = """
import os, sys, time
from mlflow.tracking import MlflowClient
from gatcluster.tracking.mlflow_runs import experiment_id
from gatcluster.tracking.store_lock import one_store_opener_at_a_time
uri, go, name = sys.argv[1:]
open(go + "." + name, "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
with one_store_opener_at_a_time(uri):  # as open_tracking does: the client creates the tables
    client = MlflowClient(tracking_uri=uri)
    exp = experiment_id(client, "gatcluster-digits", None)
print(client.create_run(exp).info.run_id)
"""


def folder_is_locked(folder: Path) -> bool:
    """Whether another open file description holds the folder's flock."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_the_folder_of_a_sqlite_store_is_locked_for_the_block_only(tmp_path):
    uri = default_tracking_uri(tmp_path)
    with one_store_opener_at_a_time(uri):
        assert folder_is_locked(tmp_path)
    assert not folder_is_locked(tmp_path)
    assert list(tmp_path.iterdir()) == []  # no lock file beside the store


def test_a_store_in_a_folder_still_to_be_made_is_locked_too(tmp_path):
    # MLflow makes the folders of sqlite:///<new folder>/mlflow.db: two stages raced there as well.
    with one_store_opener_at_a_time(default_tracking_uri(tmp_path / "new" / "deeper")):
        assert folder_is_locked(tmp_path / "new" / "deeper")


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "postgresql://u@db/mlflow", "sqlite:///:memory:"])
def test_other_stores_take_no_lock_and_make_nothing(tmp_path, monkeypatch, uri):
    monkeypatch.chdir(tmp_path)
    with one_store_opener_at_a_time(uri):
        assert not folder_is_locked(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_two_processes_opening_one_new_store_at_once_both_succeed(tmp_path):
    uri, go = default_tracking_uri(tmp_path / "project"), str(tmp_path / "go")
    (tmp_path / "project").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_A_NEW_STORE, uri, go, name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    deadline = time.monotonic() + 120
    while not all(os.path.exists(f"{go}.{name}") for name in ("a", "b")) and time.monotonic() < deadline:
        time.sleep(0.01)
    open(go, "w").close()
    try:
        results = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()  # a no-op for a process that has ended
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert len(out.strip()) == 32  # a run id

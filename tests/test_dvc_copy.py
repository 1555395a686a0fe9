"""Tests of gatcluster.dvc_copy: where DVC's experiment copies lie, and a stage that outlives DVC."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gatcluster.dvc_copy import experiment_copy

# A process started by a parent that is then killed: it writes a file when SIGTERM reaches it.
CHILD = """
import signal, sys, time
from pathlib import Path
from gatcluster import dvc_copy

def stopped(signum, frame):
    Path(sys.argv[1]).write_text(str(signum))
    raise SystemExit(130)

signal.signal(signal.SIGINT, stopped)
if sys.argv[2] == "poll":  # as where the kernel cannot be asked (not Linux)
    dvc_copy.kernel_signals_parent_death = lambda signum: False
if sys.argv[2] != "plain":
    dvc_copy.stop_when_parent_exits(interval=0.05)
print("ready", flush=True)
time.sleep(60)
"""
# The parent (DVC's `dvc exp exec-run`, say): starts the child, says its pid, waits for it.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]])
print(child.pid, flush=True)
child.wait()
"""


def test_a_path_in_an_experiment_copy_names_its_project(tmp_path):
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    (copy / "models").mkdir(parents=True)
    assert experiment_copy(copy) == (tmp_path, Path("."))
    assert experiment_copy(copy / "models") == (tmp_path, Path("models"))
    assert experiment_copy(tmp_path) is None
    assert experiment_copy(tmp_path / ".dvc" / "tmp") is None


def kill_parent_of_child(tmp_path: Path, mode: str) -> tuple[Path, int]:
    """Start PARENT with CHILD in `mode`, SIGKILL the parent once the child is ready; (the child's
    file, its pid)."""
    stopped = tmp_path / "stopped"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, str(stopped), mode], stdout=subprocess.PIPE, text=True
    )
    pid = int(parent.stdout.readline())
    assert parent.stdout.readline().strip() == "ready"  # the child's line, through the same pipe
    parent.kill()
    parent.wait(timeout=30)
    return stopped, pid


def wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


@pytest.mark.parametrize("mode", ["kernel", "poll"])
def test_a_watched_process_gets_sigint_when_its_parent_is_killed(tmp_path, mode):
    stopped, pid = kill_parent_of_child(tmp_path, mode)
    try:
        assert wait_for(stopped, 20)
        assert stopped.read_text() == str(int(signal.SIGINT))
    finally:
        kill_quietly(pid)


def test_an_unwatched_process_goes_on_when_its_parent_is_killed(tmp_path):
    # What `nohup` runs rely on: without the watch, losing the parent stops nothing.
    stopped, pid = kill_parent_of_child(tmp_path, "plain")
    try:
        assert not wait_for(stopped, 1.0)
    finally:
        kill_quietly(pid)


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)

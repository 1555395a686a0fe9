"""Tests for gatcluster/pipeline/launch.py: torchrun's launcher started from the train stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gatcluster.pipeline.launch import LAUNCHED_BY_THE_STAGE, launched_by_the_stage, threads_per_process

ROOT = Path(__file__).resolve().parents[2]

# A stand-in for a training process: says it started (with the launcher's mark), then waits for
# the signal and exits as the train stage does on Ctrl-C when launched: 130, without a message.
RANK_SCRIPT = f"""
import os, sys, time
from pathlib import Path
Path("rank" + os.environ["RANK"]).write_text(os.environ.get("{LAUNCHED_BY_THE_STAGE}", ""))
try:
    time.sleep(120)
except KeyboardInterrupt:
    sys.exit(130)
"""

LAUNCHER = """
import os, sys
from pathlib import Path
from gatcluster.library_logs import quiet_torchrun_logs
from gatcluster.pipeline.launch import ProcessesInterrupted, launch_processes
quiet_torchrun_logs(os.environ)  # as the train stage does unless GAT_VERBOSE=1
try:
    launch_processes(Path("rank.py").resolve(), 2)
except ProcessesInterrupted as err:
    print("interrupted", err.exit_code)
    sys.exit(err.exit_code)
"""


def test_ctrl_c_stops_every_process_and_the_launcher_alone_reports_it(tmp_path):
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("LOGLEVEL", None)
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"rank{r}").exists() for r in (0, 1)) and launcher.poll() is None:
            assert time.monotonic() < deadline, "the two processes did not start"
            time.sleep(0.1)
        os.killpg(launcher.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode == 130 and out == "interrupted 130\n", (out, err)
    assert err == "", err  # torchrun's agent says nothing ("Received 2 death signal" repeated ours)
    assert [(tmp_path / f"rank{r}").read_text() for r in (0, 1)] == ["1", "1"]


def test_only_the_launchers_processes_leave_stops_to_it():
    assert launched_by_the_stage({LAUNCHED_BY_THE_STAGE: "1"})
    assert not launched_by_the_stage({})  # under a torchrun of the user's: each process speaks
    assert not launched_by_the_stage({LAUNCHED_BY_THE_STAGE: "0"})


def test_processes_share_the_cores_out(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert [threads_per_process(n) for n in (1, 2, 3, 32)] == [16, 8, 5, 1]
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert threads_per_process(4) == 1

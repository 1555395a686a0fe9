"""Runs left RUNNING by a process that died without a word are closed as KILLED; live ones are not."""

from __future__ import annotations

import os
import subprocess
import sys

from mlflow.tracking import MlflowClient

from gatcluster.tracking.liveness import (
    BOOT_TAG,
    HOST_TAG,
    PID_TAG,
    close_dead_runs,
    process_gone,
    process_tags,
)
from gatcluster.tracking.mlflow_runs import default_tracking_uri, experiment_id, start_run


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_a_certainly_dead_process_counts_as_gone():
    me = process_tags()
    assert not process_gone(me)
    assert process_gone({**me, PID_TAG: str(dead_pid())})
    assert process_gone({**me, PID_TAG: "1", BOOT_TAG: "another-boot"})  # pid 1 lives, but not that boot
    assert not process_gone({**me, HOST_TAG: "another-host", PID_TAG: str(dead_pid())})
    assert not process_gone({})  # a run started by something else: not ours to judge


def test_close_dead_runs_kills_only_runs_of_gone_processes(tmp_path):
    client = MlflowClient(tracking_uri=default_tracking_uri(tmp_path))
    exp = experiment_id(client, "gatcluster-digits", tmp_path / "mlartifacts")
    me = process_tags()
    dead = start_run(client, exp, "killed -9", {**me, PID_TAG: str(dead_pid())})
    alive = start_run(client, exp, "still running", me)
    elsewhere = start_run(
        client, exp, "other host", {**me, HOST_TAG: "another-host", PID_TAG: str(dead_pid())}
    )
    assert close_dead_runs(client, exp) == [dead]
    status = {r: client.get_run(r).info.status for r in (dead, alive, elsewhere)}
    assert status == {dead: "KILLED", alive: "RUNNING", elsewhere: "RUNNING"}
    assert "killed or power loss" in client.get_run(dead).data.tags["gatcluster.closed_reason"]
    assert os.getpid() == int(me[PID_TAG])

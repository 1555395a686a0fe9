"""Runs whose process died without a word (kill -9, power loss): recognised and closed by the next run.

A run marked RUNNING carries the host, process id and boot id of the process that runs it. A later
stage on the same host closes every RUNNING run of its experiment whose process is gone (another
boot, or no such process), as KILLED, so MLflow never shows a dead run as running. Runs of other
hosts are left alone: their processes cannot be seen from here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from gatcluster.atomic import pid_alive

HOST_TAG, PID_TAG, BOOT_TAG = "gatcluster.host", "gatcluster.pid", "gatcluster.boot_id"
CLOSED_TAG = "gatcluster.closed_reason"
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot's id on Linux ("" elsewhere): a process of another boot is surely gone."""
    try:
        return BOOT_ID_FILE.read_text().strip()
    except OSError:
        return ""


def process_tags() -> dict[str, str]:
    """The tags that identify the current process."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), BOOT_TAG: boot_id()}


def process_gone(tags: dict[str, str]) -> bool:
    """True only when the tagged process is certainly not running any more on this host."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False
    if tags.get(BOOT_TAG) and boot_id() and tags[BOOT_TAG] != boot_id():
        return True
    return int(tags[PID_TAG]) != os.getpid() and not pid_alive(int(tags[PID_TAG]))


def close_dead_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark KILLED every RUNNING run of the experiment whose process is gone; their ids."""
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
    closed = []
    for run in running:
        if process_gone(run.data.tags):
            client.set_tag(
                run.info.run_id, CLOSED_TAG, "its process ended without closing it (killed or power loss)"
            )
            client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED))
            closed.append(run.info.run_id)
    return closed

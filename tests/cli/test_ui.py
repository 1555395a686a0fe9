"""`gat ui` serves the MLflow UI on the project's store; headless Chromium renders it and finds the run.

The browser check is skipped (with the reason) where no Chromium is installed; CI installs it
(.ci/run). `gat ui` owns its server: stopping it frees the port; a busy port is an error.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from gatcluster.tracking.mlflow_runs import default_tracking_uri, experiment_id, start_run

pytestmark = pytest.mark.e2e
GAT = Path(sys.executable).parent / "gat"


def wait_until_up(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"MLflow UI did not answer at {url}")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def descendants(pid: int) -> list[str]:
    """The command lines of every process below `pid`."""
    rows = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    table = [line.split(None, 2) for line in rows.splitlines() if len(line.split(None, 2)) == 3]
    below, found = {pid}, []
    for _ in range(len(table)):  # parents may be listed after their children
        for child, parent, args in table:
            if int(parent) in below and int(child) not in below:
                below.add(int(child))
                found.append(args)
    return found


def test_gat_ui_shows_the_run_and_stopping_it_stops_its_server(tmp_path, unused_port, browser):
    uri = default_tracking_uri(tmp_path)
    client = MlflowClient(tracking_uri=uri)
    exp_id = experiment_id(client, "gatcluster-digits", tmp_path / "mlartifacts")
    client.set_terminated(start_run(client, exp_id, "ui-check-run", {}))
    port = unused_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    gat = subprocess.Popen([str(GAT), "ui", "--port", str(port)], env=env, start_new_session=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health")
        serving = [args for args in descendants(gat.pid) if "uvicorn" in args or "spawn_main" in args]
        assert len(serving) == 1, serving  # one worker by default, not uvicorn's four
        dom = browser.dump_dom(f"http://127.0.0.1:{port}/#/experiments/{exp_id}/runs")
        assert "ui-check-run" in dom
        gat.send_signal(signal.SIGTERM)  # `kill PID`: to gat alone, not to its process group
        assert gat.wait(timeout=60) == 0
        deadline = time.monotonic() + 30
        while listening(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not listening(port)  # mlflow ui's workers went with it
    finally:
        if gat.poll() is None:  # a failed check: gat stops its server (in a session of its own) itself
            gat.send_signal(signal.SIGTERM)
            try:
                gat.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(gat.pid, signal.SIGKILL)


def test_a_busy_port_is_an_error_with_a_hint(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "MLFLOW_TRACKING_URI": default_tracking_uri(tmp_path)}
        done = subprocess.run(
            [str(GAT), "ui", "--port", str(port)], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr and "MLflow UI on" not in done.stderr


def test_a_damaged_or_locked_store_is_an_error_before_the_server_starts(tmp_path, unused_port):
    store = tmp_path / "mlflow.db"
    store.write_bytes(b"not a database" * 100)
    env = {**os.environ, "MLFLOW_TRACKING_URI": default_tracking_uri(tmp_path)}
    command = [str(GAT), "ui", "--port", str(unused_port())]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "MLflow UI on" not in done.stderr
    assert f"the MLflow store at sqlite:///{store} cannot be opened: file is not a database" in done.stderr
    store.unlink()
    with sqlite3.connect(store, isolation_level=None) as holder:  # another process writing, for long
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN EXCLUSIVE")
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        holder.execute("ROLLBACK")
    assert done.returncode == 1 and "cannot be opened: database is locked" in done.stderr
    # A password in the store's URI is never shown, neither in an error nor in the banner.
    command = [
        str(GAT),
        "ui",
        "--port",
        str(unused_port()),
        "--backend-store-uri",
        "sqlite://?password=s3cret",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "s3cret" not in done.stderr and "password=***" in done.stderr

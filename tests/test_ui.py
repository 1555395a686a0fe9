"""`gat ui` serves the MLflow UI on the project's store; headless Chromium renders it and finds the run.

Skipped (with the reason) where no Chromium is installed; CI installs it (.ci/run).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from gatcluster.tracking import default_tracking_uri, experiment_id, start_run

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no Chromium here (CI installs it: apt-get install chromium)"
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


@pytest.fixture
def ui_server(tmp_path):
    uri = default_tracking_uri(tmp_path)
    client = MlflowClient(tracking_uri=uri)
    exp_id = experiment_id(client, "gatcluster-digits", tmp_path / "mlartifacts")
    run_id = start_run(client, exp_id, "ui-check-run", {})
    client.set_terminated(run_id)
    port = free_port()
    gat = Path(sys.executable).parent / "gat"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen([str(gat), "ui", "--port", str(port)], env=env, start_new_session=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health")
        yield port, exp_id
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # mlflow ui starts worker processes: stop the group
        server.wait(timeout=30)


def test_ui_lists_the_run(ui_server):
    port, exp_id = ui_server
    url = f"http://127.0.0.1:{port}/#/experiments/{exp_id}/runs"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    cmd += ["--virtual-time-budget=20000", "--dump-dom", url]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=180).stdout
    assert "ui-check-run" in dom

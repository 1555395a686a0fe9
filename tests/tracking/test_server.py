"""`gat server`'s pieces: the mlflow server command, masked passwords, the store check before start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gatcluster.tracking.server import ServerConfig, ServerError, check_backend, masked, server_command

GAT = Path(sys.executable).parent / "gat"


def test_passwords_never_reach_messages():
    assert masked("postgresql://mlflow:s3cret@db:5432/mlflow") == "postgresql://mlflow:***@db:5432/mlflow"
    assert masked("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


def test_the_server_proxies_artifacts_and_binds_where_told():
    cmd = server_command(
        ServerConfig("postgresql://u@h/db", "/srv/a", "0.0.0.0", 5005, 3, "mlflow.example.org")
    )
    assert cmd[1:4] == ["-m", "mlflow", "server"]
    pairs = dict(zip(cmd[4::2], cmd[5::2], strict=False))
    assert "--serve-artifacts" in cmd and cmd[cmd.index("--artifacts-destination") + 1] == "/srv/a"
    assert pairs.get("--backend-store-uri") == "postgresql://u@h/db"
    assert (
        cmd[cmd.index("--host") + 1] == "0.0.0.0"
        and cmd[cmd.index("--allowed-hosts") + 1] == "mlflow.example.org"
    )


def test_a_store_that_is_not_a_database_is_refused():
    with pytest.raises(ServerError, match="use a SQL database URI"):
        check_backend("file:///tmp/mlruns")


def test_gat_server_says_when_the_database_is_unreachable(unused_port):
    uri = f"postgresql://mlflow:s3cret@127.0.0.1:{unused_port()}/mlflow"  # nothing listens there
    done = subprocess.run(
        [str(GAT), "server", "--backend-store-uri", uri], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (
        "cannot connect to postgresql://mlflow:***@127.0.0.1" in done.stderr and "s3cret" not in done.stderr
    )
    assert "Is the database server running" in done.stderr

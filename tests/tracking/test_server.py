"""`gat server`'s pieces: the mlflow server command and environment, masked passwords, the store
check before start, and when authentication is on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gatcluster.tracking.server import (
    BACKEND_URI_ENV,
    ServerConfig,
    ServerError,
    allowed_host_patterns,
    check_backend,
    is_loopback,
    masked,
    refuse_password_in_argv,
    server_command,
    server_env,
    sqlite_store_problem,
    writable_folder_problem,
)

GAT = Path(sys.executable).parent / "gat"


def test_passwords_never_reach_messages():
    assert masked("postgresql://mlflow:s3cret@db:5432/mlflow") == "postgresql://mlflow:***@db:5432/mlflow"
    assert masked("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


def test_the_server_proxies_artifacts_and_binds_where_told():
    config = ServerConfig("postgresql://u:pw@h/db", "/srv/a", "0.0.0.0", 5005, 3, "mlflow.example.org")
    cmd = server_command(config)
    assert cmd[1:4] == ["-m", "mlflow", "server"]
    assert "--serve-artifacts" in cmd and cmd[cmd.index("--artifacts-destination") + 1] == "/srv/a"
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert "mlflow.example.org" in cmd[cmd.index("--allowed-hosts") + 1].split(",")
    assert "--app-name" not in cmd


def test_allowed_hosts_take_any_port_and_keep_localhost():
    from mlflow.server.security_utils import is_allowed_host_header

    # MLflow compares the whole Host header, port included, and a bare --allowed-hosts replaced its
    # defaults: clients of mlflow.example.org:5000 and `gat` on the server's machine were refused.
    patterns = allowed_host_patterns("MLflow.example.org, [fd12::1], fd12::2").split(",")
    allowed = ("mlflow.example.org:5000", "mlflow.example.org", "[fd12::1]:5000", "127.0.0.1:5000", "[::1]:8")
    for host in (*allowed, "[fd12::2]:5000"):  # a bare IPv6 address as the Host header brackets it
        assert is_allowed_host_header(patterns, host), host
    for host in ("evil.example.com:5000", "mlflow.example.org.evil.com:5000", "evil.com"):
        assert not is_allowed_host_header(patterns, host), host
    assert allowed_host_patterns("*") == "*"
    assert allowed_host_patterns("mlflow.example.org:443").split(",")[-1] == "mlflow.example.org:443"


def test_the_store_uri_travels_in_the_environment_never_on_the_command_line(tmp_path):
    config = ServerConfig("postgresql://u:pw@h/db", "/srv/a", auth_config=tmp_path / "auth.ini")
    cmd, env = server_command(config), server_env(config, "key")
    assert not any("pw" in part or "postgresql" in part for part in cmd)
    assert cmd[cmd.index("--app-name") + 1] == "basic-auth"
    assert env[BACKEND_URI_ENV] == "postgresql://u:pw@h/db"
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str(tmp_path / "auth.ini")
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "key"


def test_a_password_in_the_store_option_is_refused_with_where_to_put_it():
    with pytest.raises(ServerError, match=r"holds a password.*~/.pgpass.*MLFLOW_BACKEND_STORE_URI") as err:
        refuse_password_in_argv("postgresql://mlflow:s3cret@db/mlflow")
    assert "s3cret" not in str(err.value)
    refuse_password_in_argv("postgresql://mlflow@db/mlflow")  # no password: fine


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True)]
    + [("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("mlflow.example.org", False)],
)
def test_only_loopback_hosts_count_as_private(host, loopback):
    assert is_loopback(host) is loopback


def test_a_store_that_is_not_a_database_is_refused():
    with pytest.raises(ServerError, match="use a SQL database URI"):
        check_backend("file:///tmp/mlruns")


def gat_server(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`gat server ARGS` that is expected to stop by itself (an error before serving)."""
    environ = {
        k: v for k, v in os.environ.items() if k not in (BACKEND_URI_ENV, "MLFLOW_AUTH_ADMIN_PASSWORD")
    }
    return subprocess.run(
        [str(GAT), "server", *args],
        cwd=cwd,
        env={**environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_gat_server_says_when_the_database_is_unreachable(tmp_path, unused_port):
    uri = f"postgresql://mlflow:s3cret@127.0.0.1:{unused_port()}/mlflow"  # nothing listens there
    done = gat_server(cwd=tmp_path, env={BACKEND_URI_ENV: uri})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (
        "cannot connect to postgresql://mlflow:***@127.0.0.1" in done.stderr and "s3cret" not in done.stderr
    )
    assert "Is the database server running" in done.stderr


def gat_server_in_process(monkeypatch, cwd: Path, *args: str, env: dict[str, str] | None = None):
    """`gat server ARGS` run in this process from `cwd`, for the cases that stop before serving."""
    from typer.testing import CliRunner

    from gatcluster.cli.app import app

    monkeypatch.chdir(cwd)
    for name in (BACKEND_URI_ENV, "MLFLOW_AUTH_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner().invoke(app, ["server", *args], env=env)


def test_gat_server_refuses_a_password_on_its_command_line(tmp_path, monkeypatch):
    done = gat_server_in_process(
        monkeypatch, tmp_path, "--backend-store-uri", "postgresql://mlflow:s3cret@db/mlflow"
    )
    assert done.exit_code == 1 and "s3cret" not in done.output
    assert "holds a password" in done.output


def test_serving_the_network_needs_an_admin_password_on_first_start(tmp_path, unused_port, monkeypatch):
    done = gat_server_in_process(monkeypatch, tmp_path, "--host", "0.0.0.0", "--port", str(unused_port()))
    assert done.exit_code == 1
    assert "first start with authentication: set MLFLOW_AUTH_ADMIN_PASSWORD" in done.output
    assert not (tmp_path / ".mlflow-auth").exists()
    short = gat_server_in_process(
        monkeypatch, tmp_path, "--host", "0.0.0.0", "--port", str(unused_port()),
        env={"MLFLOW_AUTH_ADMIN_PASSWORD": "short"},
    )  # fmt: skip
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    assert not (tmp_path / ".mlflow-auth").exists()  # refused before anything was written


def test_no_auth_on_the_network_says_what_it_exposes(tmp_path, unused_port):
    port = unused_port()
    cmd = [str(GAT), "server", "--host", "0.0.0.0", "--port", str(port), "--no-auth"]
    server = subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        first = server.stderr.readline()  # printed before MLflow starts
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert first.startswith(
        f"warning: --no-auth: anyone who can reach http://0.0.0.0:{port} can read, change"
    )
    assert not (tmp_path / ".mlflow-auth").exists()


def test_passwords_in_a_uri_option_and_unreadable_uris_are_refused_without_showing_them():
    uri = "postgresql://u@127.0.0.1:1/db?sslmode=disable&password=s3cret"
    assert masked(uri) == "postgresql://u@127.0.0.1:1/db?sslmode=disable&password=***"
    with pytest.raises(ServerError, match="holds a password") as err:
        refuse_password_in_argv(uri)
    assert "s3cret" not in str(err.value)
    for broken in ("postgresql://u@[::1/db", "postgresql://u@db:port/x"):
        with pytest.raises(ServerError, match=r"^postgresql://\.\.\. is not a valid URI \("):
            refuse_password_in_argv(broken)
        with pytest.raises(ServerError, match="is not a valid URI"):
            check_backend(broken)
    assert masked("postgresql://u:pw@[::1/db") == "postgresql://***"


def test_a_sqlite_store_that_cannot_serve_is_named_before_the_server_starts(tmp_path):
    (tmp_path / "garbage.db").write_bytes(b"not a database" * 100)
    (tmp_path / "a-file").write_text("x")
    cases = {
        "garbage.db": "file is not a database",
        ".": "is a folder, not a database file",
        "a-file/deeper/mlflow.db": f"{tmp_path / 'a-file'} is a file, not a folder",
    }
    for where, problem in cases.items():
        uri = f"sqlite:///{(tmp_path / where).resolve() if where == '.' else tmp_path / where}"
        assert problem in (sqlite_store_problem(uri) or ""), where
        with pytest.raises(ServerError, match=f"cannot be opened: .*{problem}"):
            check_backend(uri)
    check_backend(f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}")  # MLflow creates it, folder too
    # In memory, each server worker would keep its own empty store, and nothing past a restart.
    for uri in ("sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite://?cache=shared"):
        assert "an in-memory store keeps nothing" in (sqlite_store_problem(uri) or ""), uri
    assert writable_folder_problem(tmp_path / "a-file") == f"{tmp_path / 'a-file'} is a file, not a folder"
    assert writable_folder_problem(tmp_path / "new" / "artifacts") is None
    too_long = tmp_path / ("x" * 300)  # was an OSError traceback from exists()
    assert writable_folder_problem(too_long) == f"{too_long} cannot be looked up (File name too long)"
    assert sqlite_store_problem(f"sqlite:///{too_long}/mlflow.db") == (
        f"{too_long}/mlflow.db cannot be looked up (File name too long)"
    )
    (tmp_path / "gone").symlink_to(tmp_path / "elsewhere")
    assert writable_folder_problem(tmp_path / "gone") == f"{tmp_path / 'gone'} is a broken symlink"
    (tmp_path / "db-link").symlink_to(tmp_path / "new-db")  # SQLite creates the database it names
    assert sqlite_store_problem(f"sqlite:///{tmp_path / 'db-link'}") is None
    os.mkfifo(tmp_path / "fifo.db")
    assert (
        sqlite_store_problem(f"sqlite:///{tmp_path / 'fifo.db'}")
        == f"{tmp_path / 'fifo.db'} is not a regular file"
    )


def test_gat_server_refuses_an_artifact_folder_that_is_a_file_and_a_host_it_cannot_bind(
    tmp_path, monkeypatch
):
    (tmp_path / "arts").write_text("a file")
    done = gat_server_in_process(monkeypatch, tmp_path, "--artifacts-destination", "arts")
    assert done.exit_code == 1 and f"--artifacts-destination: {tmp_path / 'arts'} is a file" in done.output
    done = gat_server_in_process(monkeypatch, tmp_path, "--artifacts-destination", "~no-such-user/arts")
    said = "--artifacts-destination ~no-such-user/arts: no home folder is known for ~no-such-user"
    assert done.exit_code == 2 and said in done.output  # was a RuntimeError traceback
    done = gat_server_in_process(monkeypatch, tmp_path, "--host", "not a host")
    assert done.exit_code == 2 and "--host not a host: cannot listen there (" in done.output
    assert "already in use" not in done.output

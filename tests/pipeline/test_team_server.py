"""The team setup end to end: `gat server --auth` on a real PostgreSQL, users added with `gat user
add`, and the whole pipeline (`dvc repro`) logging to it as a writer.

Kept apart from test_pipeline.py so that pytest-xdist runs it beside that module.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage_project import (  # noqa: E402
    BIN,
    TINY,
    copy_project,
    digit_photos,
    dvc,
    gat_in,
    run,
    stage_env,
    write_params,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def team_project(tmp_path) -> Path:
    """A git + DVC repo with the tiny params; nothing run yet."""
    root = copy_project(tmp_path / "project")
    write_params(root, TINY)
    assert run(root, "git", "init", "-q").returncode == 0
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    return root


def rest(url: str, body: dict | None = None, user: tuple[str, str] | None = None) -> dict:
    """One MLflow REST call (GET, or POST with a JSON body), as `user` (name, password); the answer."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(user).encode()).decode()
    request = urllib.request.Request(url, data, headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def refused_status(url: str, body: dict | None = None, user: tuple[str, str] | None = None) -> int:
    """The HTTP status of a REST call that the server must refuse."""
    with pytest.raises(urllib.error.HTTPError) as err:
        rest(url, body, user)
    return err.value.code


def wait_for_server(url: str, server: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    """Return once `url`/health answers; fail with the server's log if it exits or never answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, f"gat server exited {server.returncode}: {log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"gat server did not answer at {url}: {log.read_text()[-3000:]}")


def add_user(url: str, admin: tuple[str, str], user: tuple[str, str], *options: str) -> None:
    """`gat user add` as the admin (in this process), the new password piped in, never in argv."""
    from typer.testing import CliRunner

    from gatcluster.cli.app import app

    env = {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": admin[0],
        "MLFLOW_TRACKING_PASSWORD": admin[1],
    }
    args = ["user", "add", user[0], "--password-stdin", *options]
    done = CliRunner().invoke(app, args, input=user[1] + "\n", env=env)
    assert done.exit_code == 0 and f"added {'reader' if options else 'writer'} {user[0]}" in done.output


def command_lines() -> str:
    """Every process's command line, as `ps -ef` shows them to any user of the machine."""
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout


def test_the_pipeline_logs_to_a_team_server_with_users_on_postgresql(
    team_project, tmp_path, postgres, unused_port, digits_dataset, monkeypatch
):
    """`gat server --auth` on PostgreSQL: anonymous clients are refused, a writer runs the whole
    pipeline (run, artifacts, registered version, alias, predict by alias), a reader reads but
    cannot delete, and no password or key ever shows on a command line."""
    import psycopg

    db_password, admin = "db-s3cret-4321", ("admin", "admin-pw-0123456789")
    alice, bob = ("alice", "alice-pw-0123456789"), ("bob", "bob-pw-01234567890")
    db_uri = postgres.replace("postgresql://gat@", f"postgresql://gat:{db_password}@")
    url = f"http://127.0.0.1:{unused_port()}"
    store = tmp_path / "server-artifacts"
    log = tmp_path / "server.log"
    cmd = [str(BIN / "gat"), "server", "--auth", "--artifacts-destination", str(store)]
    cmd += ["--port", url.rsplit(":", 1)[1]]
    server_env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": db_uri, "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1]}
    with log.open("w") as out:
        server = subprocess.Popen(
            cmd, cwd=tmp_path, env=server_env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        wait_for_server(url, server, log)
        api = f"{url}/api/2.0/mlflow"
        assert refused_status(f"{api}/experiments/search", {"max_results": 5}) == 401  # anonymous
        add_user(url, admin, alice)
        add_user(url, admin, bob, "--read-only")
        secret_key = (tmp_path / ".mlflow-auth" / "secret_key").read_text().strip()
        shown = command_lines()
        for secret in (db_password, admin[1], alice[1], bob[1], secret_key):
            assert secret not in shown

        env = {
            **stage_env(team_project),
            "MLFLOW_TRACKING_URI": url,
            "GAT_CACHE_DIR": str(tmp_path / "cache"),
        }
        env |= {"MLFLOW_TRACKING_USERNAME": alice[0], "MLFLOW_TRACKING_PASSWORD": alice[1]}
        out = dvc(team_project, "repro", env=env)  # check, fetch, then train, evaluate, export on the server
        assert "View run" not in out  # MLflow's URL lines, as each stage's run ends: GAT_VERBOSE=1 only

        exp = rest(f"{api}/experiments/get-by-name?experiment_name=gatcluster-digits", user=bob)
        found = rest(f"{api}/runs/search", {"experiment_ids": [exp["experiment"]["experiment_id"]]}, bob)
        (found,) = found["runs"]
        run_id = found["info"]["run_id"]
        assert found["info"]["status"] == "FINISHED"
        assert {"acc", "nmi", "ari", "loss/total"} <= {m["key"] for m in found["data"]["metrics"]}
        assert {"key": "train.iterations", "value": "2"} in found["data"]["params"]
        listed = rest(f"{api}/artifacts/list?run_id={run_id}&path=reports", user=alice)["files"]
        assert {"reports/gallery.html", "reports/metrics.json"} <= {f["path"] for f in listed}
        assert list(store.rglob("gallery.html"))  # artifacts went through the server to its store
        assert refused_status(f"{api}/runs/delete", {"run_id": run_id}, bob) == 403  # a reader
        assert refused_status(f"{api}/registered-models/delete", {"name": "gatcluster"}, bob) == 403

        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        with monkeypatch.context() as as_bob:  # bob keeps his user in MLflow's credentials file
            home = tmp_path / "bob-home"
            (home / ".mlflow").mkdir(parents=True)
            (home / ".mlflow" / "credentials").write_text(
                f"[mlflow]\nmlflow_tracking_username = {bob[0]}\nmlflow_tracking_password = {bob[1]}\n"
            )
            as_bob.setenv("HOME", str(home))
            as_bob.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
            as_bob.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
            refused = gat_in(team_project, monkeypatch, tmp_path / "cache", "promote", "1")
        assert refused.exit_code == 1 and "does not let bob do this" in refused.output, refused.output
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", alice[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", alice[1])
        promoted = gat_in(team_project, monkeypatch, tmp_path / "cache", "promote", "1")
        assert promoted.exit_code == 0, promoted.output
        alias = rest(f"{api}/registered-models/alias?name=gatcluster&alias=champion", user=bob)
        assert alias["model_version"]["version"] == "1" and alias["model_version"]["run_id"] == run_id
        photos = digit_photos(tmp_path / "photos", digits_dataset, 5)
        model = ["--model", "models:/gatcluster@champion"]
        done = gat_in(
            team_project, monkeypatch, tmp_path / "cache", "predict", str(photos), *model, "--out", "p.csv"
        )
        assert done.exit_code == 0 and "models:/gatcluster@champion: version 1" in done.stderr, done.output

        with psycopg.connect(postgres) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT run_uuid, status FROM runs")
            assert cursor.fetchall() == [(run_id, "FINISHED")]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)

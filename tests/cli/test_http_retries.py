"""An interactive registry command gives up on a failing server after two retries, not seven."""

from __future__ import annotations

from typer.testing import CliRunner

from gatcluster.cli.app import app
from gatcluster.cli.http_retries import retry_briefly

runner = CliRunner()


def test_a_value_the_user_set_is_kept():
    environ = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "9"}
    retry_briefly(environ)
    assert environ == {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "9", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def test_gat_promote_against_a_server_answering_500_asks_three_times(monkeypatch, tmp_path, answering_server):
    url, asked = answering_server(500, b"")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")  # the test's own: no waits
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["promote", "3"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(asked) == 3 and len(set(asked)) == 1, asked  # one request, two retries (MLflow: 1 + 7)

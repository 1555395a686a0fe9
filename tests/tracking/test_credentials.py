"""The credentials MLflow sends: environment first, then ~/.mlflow/credentials."""

from pathlib import Path

import pytest

from gatcluster.tracking.credentials import CredentialsUnreadable, check_credentials_file, sent_credentials


def test_the_credentials_file_counts_where_the_environment_says_nothing(mlflow_credentials_file, monkeypatch):
    assert sent_credentials() == (None, None)
    mlflow_credentials_file("dora", "from-file")
    assert sent_credentials() == ("dora", "from-file")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "erin")  # the environment wins, as in MLflow
    assert sent_credentials() == ("erin", "from-file")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[mlflow]\nmlflow_tracking_password = 50%off\n", "a % in mlflow_tracking_password of [mlflow] must"),
        ("mlflow_tracking_username = dora\n", "File contains no section headers."),
        ("[mlflow]\nmlflow_tracking_username = d\xf6ra\n".encode("latin-1"), "codec can't decode byte 0xf6"),
    ],
)
def test_a_file_mlflow_cannot_read_is_named_for_servers_only(mlflow_credentials_file, content, reason):
    mlflow_credentials_file("dora", "x")  # makes ~/.mlflow, then replaced by the damaged file
    file = Path.home() / ".mlflow" / "credentials"
    file.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CredentialsUnreadable, match="~/.mlflow/credentials cannot be read") as caught:
        check_credentials_file("https://mlflow.example.org")
    assert reason in str(caught.value) and "off" not in str(caught.value)  # no part of a password
    check_credentials_file("sqlite:///mlflow.db")  # a local store never reads the file
    assert sent_credentials() == (None, None)  # for error messages: as if none were there


def test_a_malformed_server_uri_is_still_a_server_uri(mlflow_credentials_file):
    check_credentials_file("http://[::1")  # not a ValueError: reachability names the bad URI
    mlflow_credentials_file("dora", "x")
    (Path.home() / ".mlflow" / "credentials").write_text("mlflow_tracking_username = dora\n")
    with pytest.raises(CredentialsUnreadable):
        check_credentials_file("http://[::1")

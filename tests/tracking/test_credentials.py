"""The credentials MLflow sends: environment first, then ~/.mlflow/credentials."""

from gatcluster.tracking.credentials import sent_credentials


def test_the_credentials_file_counts_where_the_environment_says_nothing(mlflow_credentials_file, monkeypatch):
    assert sent_credentials() == (None, None)
    mlflow_credentials_file("dora", "from-file")
    assert sent_credentials() == ("dora", "from-file")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "erin")  # the environment wins, as in MLflow
    assert sent_credentials() == ("erin", "from-file")

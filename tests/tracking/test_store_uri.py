"""Which MLFLOW_TRACKING_URI values MLflow can track runs in, told before any stage runs."""

import pytest

from gatcluster.tracking.store_uri import file_store_allowed, is_server_uri, masked, tracking_uri_problem


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite:////p/mlflow.db",
        "sqlite:///mlflow.db?timeout=30",
        "http://h:5000",
        "https://h",
        "postgresql+psycopg2://u@h/db",
        "databricks",
        "uc",
    ],
)
def test_stores_mlflow_tracks_in_pass(uri):
    assert tracking_uri_problem(uri) is None


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        (
            "file:///tmp/mlruns",
            "is a file store (mlruns/), which MLflow 3 writes only with MLFLOW_ALLOW_FILE_STORE",
        ),
        ("mlruns", "is a file store"),
        ("foo://bar", "names no store MLflow tracks in (foo://)"),
        ("sqlite:///:memory:", "is an in-memory store, which keeps nothing"),
        ("sqlite:///", "is an in-memory store"),
    ],
)
def test_stores_mlflow_cannot_use_are_named(uri, said):
    assert said in tracking_uri_problem(uri)


def test_the_file_store_passes_where_mlflow_is_told_to_allow_it():
    assert tracking_uri_problem("file:///tmp/mlruns", allow_file_store=True) is None
    assert [file_store_allowed(v) for v in ("true", "1", "TRUE", "false", "", None)] == [True] * 3 + [
        False
    ] * 3


def test_servers_are_told_apart_and_passwords_never_shown():
    assert is_server_uri("HTTPS://h") and is_server_uri("http://[::1") and not is_server_uri("httpx://h")
    assert not is_server_uri("sqlite:///m.db") and not is_server_uri("mlruns")
    assert masked("https://alice:S3cret@h:5000") == "https://alice:***@h:5000"
    assert "S3cret" not in tracking_uri_problem("https://alice:S3cret@:5000")

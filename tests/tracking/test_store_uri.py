"""Which MLFLOW_TRACKING_URI values MLflow can track runs in, told before any stage runs."""

import os

import pytest

from gatcluster.tracking.store_uri import file_store_allowed, is_server_uri, masked, tracking_uri_problem


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite:///{tmp}/mlflow.db",  # made on first use
        "sqlite:///{tmp}/runs/mlflow.db",  # its folder too
        "sqlite:///mlflow.db?timeout=30",
        "http://h:5000",
        "https://h",
        "postgresql+psycopg2://u@h/db",
        "databricks",
        "uc",
    ],
)
def test_stores_mlflow_tracks_in_pass(uri, tmp_path):
    assert tracking_uri_problem(uri.replace("{tmp}", str(tmp_path))) is None


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


def test_a_sqlite_file_no_database_can_be_made_at_is_named_with_why(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "to-nowhere").symlink_to(tmp_path / "missing-folder" / "mlflow.db")
    (tmp_path / "to-new").symlink_to(tmp_path / "new.db")  # SQLite makes the database it points at
    os.mkfifo(tmp_path / "fifo")
    cases = {
        "folder": "folder is a folder, not a database file",
        "a-file/mlflow.db": "a-file is a file, not a folder",
        "loop": "loop is a broken symlink",
        "loop/mlflow.db": "loop is a broken symlink",
        "to-nowhere": "to-nowhere is a broken symlink",
        "fifo": "fifo is not a regular file",
        "x" * 300: "cannot be looked up (File name too long)",
        os.fsdecode(b"m\xff.db"): "m\\xff.db is not UTF-8 text",  # SQLAlchemy raised on it in the server
    }
    for name, said in cases.items():
        problem = tracking_uri_problem(f"sqlite:///{tmp_path / name}")  # MLflow retried these for minutes
        assert problem is not None and problem.startswith("cannot be used: ") and said in problem, name
    assert tracking_uri_problem(f"sqlite:///{tmp_path / 'to-new'}") is None


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

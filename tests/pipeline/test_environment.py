"""GAT_THREADS and MLFLOW_TRACKING_URI checked before any stage sets its outputs aside."""

from __future__ import annotations

import re

import pytest

from gatcluster.pipeline.environment import BadEnvironment, check_environment, threads_wanted


@pytest.mark.parametrize(
    ("threads", "uri", "said"),
    [
        ("abc", None, "GAT_THREADS must be a whole number from 1 to 1024, got 'abc'"),
        ("0", None, "GAT_THREADS must be a whole number from 1 to 1024, got '0'"),
        (None, "file:///tmp/x", "MLFLOW_TRACKING_URI file:///tmp/x is a file store (mlruns/)"),
        (None, "foo://bar", "MLFLOW_TRACKING_URI foo://bar names no store MLflow tracks in"),
        (None, "http://", "MLFLOW_TRACKING_URI http:// names no host"),
        ("\u00b2", None, "got '\u00b2'"),  # a superscript two passes str.isdigit, not int()
        ("99999", None, "from 1 to 1024, got '99999'"),
        (
            None,
            "postgres://mlflow:S3cret@db/m",
            "MLFLOW_TRACKING_URI postgres://mlflow:***@db/m names no store",
        ),
    ],
)
def test_environment_the_later_stages_would_refuse_stops_check(threads, uri, said):
    # train stopped on these only after dvc repro had set the previous model and curves aside
    with pytest.raises(BadEnvironment, match=re.escape(said)):
        check_environment(threads, uri, allow_file_store=False)


def test_a_usable_environment_passes_check():
    check_environment(None, None, allow_file_store=False)
    check_environment("2", "  ", allow_file_store=False)  # blank: the project's mlflow.db
    check_environment(None, "sqlite:///mlflow.db", allow_file_store=False)
    check_environment(None, "file:///tmp/x", allow_file_store=True)
    check_environment(None, "databricks", allow_file_store=False)  # MLflow's bare Databricks form
    check_environment(
        None, "http://127.0.0.1:9", allow_file_store=False
    )  # not connected: fetch needs no server


def test_threads_are_a_positive_count_or_unset():
    assert threads_wanted(None) is None and threads_wanted("") is None and threads_wanted("3") == 3
    with pytest.raises(BadEnvironment, match="GAT_THREADS must be a whole number from 1 to 1024, got '-1'"):
        threads_wanted("-1")

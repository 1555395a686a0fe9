"""Library log lines: quiet unless asked for, a level the user set kept."""

from __future__ import annotations

import logging

from gatcluster.library_logs import quiet_library_logs, quiet_torchrun_logs


def test_mlflow_info_lines_are_dropped_and_its_warnings_kept(monkeypatch):
    for name in ("mlflow", "alembic", "mlflow.store.db.utils"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    environ = {}
    quiet_library_logs(environ)
    assert environ == {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}  # "View run ... at <url>"
    assert not logging.getLogger("mlflow.tracking").isEnabledFor(logging.INFO)
    assert logging.getLogger("mlflow.tracking").isEnabledFor(logging.WARNING)
    assert not logging.getLogger("mlflow.store.db.utils").isEnabledFor(logging.ERROR)


def test_torchrun_is_silenced_unless_the_user_set_loglevel(monkeypatch):
    torchrun = logging.getLogger("torch.distributed.elastic")
    monkeypatch.setattr(torchrun, "level", logging.NOTSET)
    environ = {"LOGLEVEL": "INFO"}
    quiet_torchrun_logs(environ)
    assert environ == {"LOGLEVEL": "INFO"} and torchrun.level == logging.NOTSET
    environ = {}
    quiet_torchrun_logs(environ)
    assert environ == {"LOGLEVEL": "CRITICAL"}  # read by some of its loggers as they are made
    assert not logging.getLogger("torch.distributed.elastic.multiprocessing.api").isEnabledFor(logging.ERROR)


def test_a_run_url_switch_the_user_set_is_kept():
    environ = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "false"}
    quiet_library_logs(environ)
    assert environ == {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "false"}

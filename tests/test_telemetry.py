"""Telemetry defaults: every switch set to off, and a value the user chose is kept."""

from __future__ import annotations

from gatcluster.telemetry import TELEMETRY_SWITCHES, telemetry_off


def test_every_switch_is_set_and_a_users_choice_wins(monkeypatch):
    for name in TELEMETRY_SWITCHES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    telemetry_off()
    import os

    assert os.environ["DVC_NO_ANALYTICS"] == "1" and os.environ["ORT_DISABLE_TELEMETRY"] == "1"
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"

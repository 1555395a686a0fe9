"""Telemetry of the dependencies: off unless the user turned it on. The one place that says how.

Entry points (the `gat` CLI, the stage scripts, the test suite) call `telemetry_off()` before they
import MLflow, ONNX Runtime or DVC; a value the user set explicitly is kept. The DVC command itself
starts before any of our code: the Makefile exports DVC_NO_ANALYTICS for it.
"""

from __future__ import annotations

import os

TELEMETRY_SWITCHES = {
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "1",
    "ORT_DISABLE_TELEMETRY": "1",
}


def telemetry_off() -> None:
    """Set every switch in TELEMETRY_SWITCHES that the environment does not set already."""
    for name, value in TELEMETRY_SWITCHES.items():
        os.environ.setdefault(name, value)

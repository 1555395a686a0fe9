"""System metrics of a training run in MLflow: CPU, memory, disk, network, and GPU where present.

MLflow's own sampler (`SystemMetricsMonitor`, psutil; nvidia-ml-py for NVIDIA GPUs) runs in a
background thread while training runs and logs `system/...` metrics to the run (the UI's "System
metrics" tab). A resumed run continues their steps instead of starting again at 0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def system_metrics(run_id: str, tracking_uri: str, every_s: float) -> Iterator[None]:
    """Sample system metrics into run `run_id` every `every_s` seconds while the block runs (0: off)."""
    if every_s <= 0:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    # MLflow announces start and stop at INFO; the stage's INFO lines are for its own news.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    monitor = SystemMetricsMonitor(
        run_id, sampling_interval=every_s, resume_logging=True, tracking_uri=tracking_uri
    )
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()

"""benchmarks/gpu_check.py runs on a stock PyTorch stack: exercised here on the CPU so it cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
ABSENT_ON_A_BARE_BOX = ("mlflow", "dvc", "onnx", "onnxscript", "mlxtend")


def test_gpu_check_runs_without_mlflow_dvc_or_onnx(tmp_path):
    # Modules that a bare GPU box lacks are made unimportable, as they would be there.
    for name in ABSENT_ON_A_BARE_BOX:
        (tmp_path / f"{name}.py").write_text(f"raise ImportError('{name} is not on a bare GPU box')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    args = [
        "--source",
        "digits",
        "--iterations",
        "1",
        "--large-batch",
        "256",
        "--large-batches",
        "200",
        "400",
    ]
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "amp True : ACC" in out and "amp False: ACC" in out and "training images/s" in out
    if not torch.cuda.is_available():
        assert out.count("skipped: no usable CUDA GPU") == 2 and "CUDA GPU: none" in out

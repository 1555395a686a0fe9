"""benchmarks/gpu_check.py and gpu_diagnose.py run on a stock PyTorch stack: exercised here on the
CPU so that they cannot rot between GPU sessions."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_scripts import REPO, run_script  # noqa: E402

ABSENT_ON_A_BARE_BOX = ("mlflow", "dvc", "onnx", "onnxscript", "mlxtend", "ruamel")


def run_on_a_bare_box(tmp_path: Path, script: str, args: list[str]) -> str:
    """Run a benchmark script with the modules a bare GPU box lacks made unimportable; its stdout."""
    for name in ABSENT_ON_A_BARE_BOX:
        (tmp_path / f"{name}.py").write_text(f"raise ImportError('{name} is not on a bare GPU box')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    return run_script(script, args, tmp_path, env)


def test_gpu_check_runs_without_mlflow_dvc_or_onnx(tmp_path):
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
        "--seeds",
        "0",
        "--seed-iterations",
        "1",
        "--phase-iterations",
        "1",
    ]
    out = run_on_a_bare_box(tmp_path, "gpu_check.py", args)
    assert "amp True : ACC" in out and "amp False: ACC" in out and "training images/s" in out
    assert "targets incl. k-means" in out and "optimizer steps" in out and "seed 0: ACC" in out
    assert re.search(r"cpu \(\d+ threads\) +[\d.]+ ms", out)  # the spectral embedding, timed
    if not torch.cuda.is_available():
        assert out.count("skipped: no usable CUDA GPU") == 3 and "CUDA GPU: none" in out


def test_gpu_diagnose_runs_its_cpu_rows_without_mlflow_dvc_or_onnx(tmp_path):
    out = run_on_a_bare_box(tmp_path, "gpu_diagnose.py", ["--source", "digits", "--iterations", "1"])
    assert "cpu float32 channels_last 0 amp 0" in out and "cos 1.0000" in out
    assert "cpu (this machine's default arithmetic)" in out
    if not torch.cuda.is_available():
        assert out.count("skipped: no usable CUDA GPU") == 15

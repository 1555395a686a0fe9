"""benchmarks/gpu_session.sh: the parts it runs, in which order, and where their output goes,
checked with a stand-in `python3` (the real parts are exercised by test_gpu_check.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_session.sh"


def run_session(tmp_path: Path, *parts: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Run the session script with a `python3` that only records its arguments; (process, log)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\necho "unbuffered=$PYTHONUNBUFFERED"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "OUT": str(tmp_path / "out")}
    done = subprocess.run(
        ["bash", str(SCRIPT), *parts], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    return done, log


def test_default_session_runs_tests_then_seeds_then_diagnosis_into_one_file_each(tmp_path):
    done, log = run_session(tmp_path)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 3 and calls[0].startswith("-m pytest") and "-m gpu" in calls[0]
    assert calls[1:] == ["benchmarks/gpu_check.py --seeds 0 1 2 3 4", "benchmarks/gpu_diagnose.py"]
    out = tmp_path / "out"
    for part in ("tests", "seeds", "diagnose"):
        assert (out / f"{part}.txt").read_text() == "unbuffered=1\n"  # a stopped part keeps its lines
    assert [line.split(":")[0] for line in (out / "parts.txt").read_text().splitlines()] == [
        "tests",
        "seeds",
        "diagnose",
    ]


def test_an_unknown_part_is_refused_before_anything_runs(tmp_path):
    done, log = run_session(tmp_path, "seeds", "bogus")
    assert done.returncode == 2 and "unknown part: bogus" in done.stderr
    assert not log.exists()

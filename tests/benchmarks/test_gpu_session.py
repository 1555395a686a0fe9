"""benchmarks/gpu_session.sh: the parts it runs, in which order, and where their output goes,
checked with a stand-in `python3` (the real parts are exercised by test_gpu_check.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_session.sh"


def stand_in(bin_dir: Path, name: str, script: str) -> None:
    """An executable `name` in `bin_dir` that runs the shell `script`."""
    fake = bin_dir / name
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)


def run_session(
    tmp_path: Path, *parts: str, timeout_exit: int | None = None
) -> tuple[subprocess.CompletedProcess, Path]:
    """Run the session script with a `python3` that only records its arguments; (process, log).

    With `timeout_exit`, `timeout` is a stand-in too: it runs nothing and exits with that status.
    """
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir(parents=True)
    stand_in(bin_dir, "python3", f'echo "$*" >> {log}\necho "unbuffered=$PYTHONUNBUFFERED"')
    if timeout_exit is not None:
        stand_in(bin_dir, "timeout", f"exit {timeout_exit}")
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


def test_a_part_stopped_at_its_limit_says_so_and_an_early_kill_does_not(tmp_path):
    done, _ = run_session(tmp_path / "limit", "seeds", timeout_exit=124)
    assert done.returncode == 124
    assert (tmp_path / "limit" / "out" / "seeds.txt").read_text() == "(stopped at its limit of 330 s)\n"
    # 137 long before the limit is not timeout's KILL (e.g. out of memory): no such note.
    done, _ = run_session(tmp_path / "killed", "seeds", timeout_exit=137)
    assert done.returncode == 137
    assert (tmp_path / "killed" / "out" / "seeds.txt").read_text() == ""

"""Running a benchmark script as a user would: its own process, its stdout, a clear failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_script(name: str, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run benchmarks/<name> with `args`; its stdout (the test fails with stdout and stderr)."""
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / name), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout

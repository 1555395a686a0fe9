"""The Makefile finds any Python >= 3.11 on PATH and says what it needs when there is none."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_setup(tmp_path: Path, pythons: dict[str, str], dry_run: bool = True) -> subprocess.CompletedProcess:
    """`make setup` (`-n`: only print) in a copy of the Makefile, with only `pythons` on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in pythons.items():
        (bin_dir / name).symlink_to(target)
    (tmp_path / "project").mkdir()
    shutil.copy(ROOT / "Makefile", tmp_path / "project" / "Makefile")
    (tmp_path / "project" / "pyproject.toml").touch()
    env = {"PATH": f"{bin_dir}:/nonexistent", "HOME": str(tmp_path)}
    make = shutil.which("make")
    args = [make, "-n", "setup"] if dry_run else [make, "setup"]
    return subprocess.run(args, cwd=tmp_path / "project", env=env, capture_output=True, text=True)


def test_a_machine_whose_only_python_is_312_uses_it(tmp_path):
    # A stand-in named python3.12 (this interpreter: >= 3.11, as the check asks).
    result = make_setup(tmp_path, {"python3.12": sys.executable})
    assert result.returncode == 0, result.stderr
    assert "python3.12 -m venv .venv" in result.stdout


def test_an_old_python_is_passed_over_with_a_clear_error(tmp_path):
    old = tmp_path / "old-python"
    old.write_text("#!/bin/sh\nexit 1\n")  # answers the version check as Python 3.10 would: no
    old.chmod(0o755)
    result = make_setup(tmp_path, {"python3": str(old)}, dry_run=False)
    assert result.returncode != 0
    assert "needs Python 3.11 or newer" in result.stderr
    assert not (tmp_path / "project" / ".venv").exists()

"""The training-code digest that a checkpoint must match: by content, not by location."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import gatcluster

PRINT_DIGEST = "from gatcluster.training.resume import code_digest; print(code_digest())"


def digest_of(package_parent: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PRINT_DIGEST],
        cwd=package_parent,  # `python -c` puts the working folder first on sys.path
        env={"PYTHONPATH": str(package_parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_digest_follows_training_code_not_its_location_or_other_code(tmp_path):
    copy = tmp_path / "copy"
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(Path(gatcluster.__file__).parent, copy / "gatcluster", ignore=skip)
    original = digest_of(copy)
    cli = copy / "gatcluster" / "cli"
    if cli.is_dir():  # code that does not train: no effect
        (cli / "extra_note.py").write_text('"""not training code"""\n')
        assert digest_of(copy) == original
    losses = copy / "gatcluster" / "training" / "losses.py"
    losses.write_text(losses.read_text() + "\n# an edit\n")
    assert digest_of(copy) != original

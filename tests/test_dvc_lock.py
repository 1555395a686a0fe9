"""dvc.lock tells the truth: CI fails when a stage's code or params changed after it was written.

The committed metrics are those of the committed code only when dvc.lock matches it; the check
(tools/check_dvc_lock.py) runs `dvc status` and ignores only data a fresh clone has not pulled.
"""

from __future__ import annotations

import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = runpy.run_path(str(ROOT / "tools" / "check_dvc_lock.py"))

pytestmark = pytest.mark.e2e


def test_committed_dvc_lock_matches_the_code_and_params():
    stale = TOOL["stale_stages"](TOOL["dvc_status"](ROOT))
    assert stale == {}, "dvc.lock is stale: run `make repro` and commit dvc.lock with the reports"


@pytest.fixture
def project_copy(tmp_path) -> Path:
    """The tracked files of this checkout (as they are on disk) in a new git repository."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in files.stdout.splitlines():
        source = ROOT / name
        if source.is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tmp_path / name)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def changes(project: Path) -> dict[str, list[str]]:
    return TOOL["stale_stages"](TOOL["dvc_status"](project))


def test_a_code_edit_makes_its_stages_stale_and_a_docs_or_cli_edit_does_not(project_copy):
    before = changes(project_copy)
    with (project_copy / "README.md").open("a") as f:
        f.write("\nan edit\n")
    with (project_copy / "gatcluster" / "cli" / "app.py").open("a") as f:
        f.write("\n# an edit\n")
    assert changes(project_copy) == before  # dvc repro would re-run nothing more

    with (project_copy / "gatcluster" / "training" / "losses.py").open("a") as f:
        f.write("\n# an edit\n")
    after = changes(project_copy)
    assert "gatcluster/training/losses.py modified" in after["train"]
    for stage in ("check", "fetch", "evaluate", "export"):  # none of them runs the losses
        assert after.get(stage) == before.get(stage)

    result = subprocess.run(
        [sys.executable, str(project_copy / "tools" / "check_dvc_lock.py")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "stale for stage train" in result.stderr

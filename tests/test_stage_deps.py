"""dvc.yaml lists, for every stage, exactly the code it runs (tools/stage_deps.py)."""

from __future__ import annotations

import runpy
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOL = runpy.run_path(str(ROOT / "tools" / "stage_deps.py"))


def test_dvc_yaml_code_deps_are_the_import_closure_of_each_stage():
    dvc_yaml = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert TOOL["differences"](dvc_yaml) == {}, "run: .venv/bin/python tools/stage_deps.py --write"


def test_the_closure_follows_imports_and_leaves_the_cli_out():
    train = TOOL["code_closure"](ROOT / "stages" / "train.py")
    assert "gatcluster/training/trainer.py" in train  # imported by fit, imported by the train stage
    assert "gatcluster/training/losses.py" in train
    assert "gatcluster/__init__.py" in train and "stages/_common.py" in train
    for stage in ("check", "fetch", "train", "evaluate", "export"):
        closure = TOOL["code_closure"](ROOT / "stages" / f"{stage}.py")
        assert not [p for p in closure if p.startswith("gatcluster/cli/")], stage


def test_annotation_only_imports_are_not_deps(tmp_path):
    package = tmp_path / "gatcluster"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "used.py").write_text("")
    (package / "typed.py").write_text("")
    script = tmp_path / "stages" / "s.py"
    script.parent.mkdir()
    script.write_text(
        "from typing import TYPE_CHECKING\nimport gatcluster.used\n"
        "if TYPE_CHECKING:\n    import gatcluster.typed\n"
        "def later():\n    from gatcluster import used\n"
    )
    closure = TOOL["code_closure"](script, tmp_path)
    assert closure == ["gatcluster/__init__.py", "gatcluster/used.py", "stages/s.py"]

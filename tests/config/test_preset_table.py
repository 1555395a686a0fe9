"""The README's preset table is what the preset files set (tools/preset_table.py)."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = runpy.run_path(str(ROOT / "tools" / "preset_table.py"))


def test_readme_preset_table_matches_the_preset_files():
    readme = (ROOT / "README.md").read_text()
    assert TOOL["readme_table"](readme) == TOOL["preset_table"](), (
        "run: .venv/bin/python tools/preset_table.py --write"
    )


def test_every_preset_has_a_row_naming_each_key_it_sets():
    table = TOOL["preset_table"]()
    assert table.count("\n| `") == len(list((ROOT / "gatcluster" / "config" / "presets").glob("*.yaml")))
    assert "`data.source`: stl10" in table and "`experimental.relations`: targets" in table

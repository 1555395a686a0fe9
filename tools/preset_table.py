"""The README's table of what each preset sets, generated from gatcluster/config/presets/.

    .venv/bin/python tools/preset_table.py           # print the table
    .venv/bin/python tools/preset_table.py --write   # replace it in README.md (between the markers)

tests/config/test_preset_table.py fails when the README's table differs from this output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "gatcluster" / "config" / "presets"
START, END = "<!-- presets:start -->", "<!-- presets:end -->"


def flow(value: object) -> str:
    """A value as YAML flow text: true/false/null, numbers as written, lists in brackets."""
    if value is True or value is False:
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return str(value)


def dotted(node: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested mapping -> [("section.key", value)] in file order."""
    items = []
    for key, value in node.items():
        if isinstance(value, dict) and value:
            items += dotted(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def preset_table() -> str:
    """One Markdown row per preset: name, its file's first comment line, every key it sets."""
    rows = ["| preset | what it is for | what it sets |", "|---|---|---|"]
    for path in sorted(PRESETS.glob("*.yaml"), key=lambda p: p.stem):
        text = path.read_text()
        description = text.splitlines()[0].lstrip("# ").strip()
        own = dotted(yaml.safe_load(text) or {})  # `defaults` names nothing: every key goes back
        sets = ", ".join(f"`{key}`: {flow(value)}" for key, value in own) or "nothing of its own"
        rows.append(f"| `{path.stem}` | {description} | {sets} |")
    return "\n".join(rows)


def readme_table(readme: str) -> str:
    """The table between the markers of README text."""
    return readme.split(START, 1)[1].split(END, 1)[0].strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the table in README.md")
    args = parser.parse_args()
    table = preset_table()
    if not args.write:
        print(table)
        return 0
    readme = (ROOT / "README.md").read_text()
    old = readme_table(readme)
    (ROOT / "README.md").write_text(readme.replace(old, table, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

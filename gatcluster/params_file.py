"""Presets and in-place edits of params.yaml that keep its comments and layout.

A preset is a partial params mapping shipped in `gatcluster/presets/<name>.yaml`. Applying one
rewrites only the value part of the lines it names, then validates the result as a whole, so a
preset can never leave an invalid params.yaml behind.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import yaml

from gatcluster.config import Params, ParamsError, params_from_text

# "  key: value   # comment" -> indent, key, value, comment (a '#' inside brackets is not expected)
LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_\-]+):(?P<value>[^#]*?)(?P<comment>\s*#.*)?$")


def preset_names() -> list[str]:
    """Names of the shipped presets."""
    files = resources.files("gatcluster").joinpath("presets").iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def preset_overrides(name: str) -> dict[str, Any]:
    """The dotted-key overrides of preset `name`; a ParamsError listing the presets if unknown."""
    if name not in preset_names():
        raise ParamsError(f"unknown preset {name!r}; available: {', '.join(preset_names())}")
    text = resources.files("gatcluster").joinpath("presets", f"{name}.yaml").read_text()
    return flatten(yaml.safe_load(text) or {})


def preset_description(name: str) -> str:
    """The first comment line of a preset file."""
    text = resources.files("gatcluster").joinpath("presets", f"{name}.yaml").read_text()
    first = text.splitlines()[0] if text else ""
    return first.lstrip("# ").strip()


def flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> {"a.b": value}."""
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def yaml_value(value: Any) -> str:
    """One value in YAML flow style (lists inline, null for None)."""
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def set_values(text: str, overrides: dict[str, Any]) -> str:
    """`text` (params.yaml) with the value of each dotted key replaced in place.

    Keys must already be in the file, one per line; a ParamsError names any that are not.
    """
    lines, path, done = text.splitlines(keepends=True), [], set()
    for i, line in enumerate(lines):
        match = LINE.match(line.rstrip("\n"))
        if not match:
            continue
        depth = len(match["indent"]) // 2
        path = [*path[:depth], match["key"]]
        dotted = ".".join(path)
        if dotted in overrides:
            lines[i] = replace_value(line, match, overrides[dotted])
            done.add(dotted)
    missing = sorted(set(overrides) - done)
    if missing:
        raise ParamsError(f"params file has no line for {', '.join(missing)}: add the key(s) first")
    return "".join(lines)


def replace_value(line: str, match: re.Match, value: Any) -> str:
    """The line with its value replaced; the comment stays in its column where it fits."""
    head = f"{match['indent']}{match['key']}: {yaml_value(value)}"
    if not match["comment"]:
        return head + "\n"
    column = line.index("#", len(match["indent"]) + len(match["key"]))
    return f"{head.ljust(column - 1)} {match['comment'].strip()}\n"


def apply_overrides(text: str, overrides: dict[str, Any]) -> tuple[str, Params]:
    """New params.yaml text and its validated Params; nothing is written here."""
    params_from_text(text)  # a file that is already broken is reported as it is
    new_text = set_values(text, overrides)
    return new_text, params_from_text(new_text)

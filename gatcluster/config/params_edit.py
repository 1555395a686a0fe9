"""Presets and in-place edits of params.yaml that keep its comments and layout.

A preset is a partial params mapping shipped in `gatcluster/config/presets/<name>.yaml`. Applying one
rewrites only the values it names (a ruamel.yaml round trip: comments and layout stay), then
validates the result as a whole, so a preset can never leave an invalid params.yaml behind.
"""

from __future__ import annotations

import io
from importlib import resources
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq

from gatcluster.config.loading import params_from_text
from gatcluster.config.params import Params, ParamsError


def preset_names() -> list[str]:
    """Names of the shipped presets."""
    files = resources.files("gatcluster.config").joinpath("presets").iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def preset_overrides(name: str) -> dict[str, Any]:
    """The dotted-key overrides of preset `name`; a ParamsError listing the presets if unknown."""
    if name not in preset_names():
        raise ParamsError(f"unknown preset {name!r}; available: {', '.join(preset_names())}")
    text = resources.files("gatcluster.config").joinpath("presets", f"{name}.yaml").read_text()
    return flatten(yaml.safe_load(text) or {})


def preset_description(name: str) -> str:
    """The first comment line of a preset file."""
    text = resources.files("gatcluster.config").joinpath("presets", f"{name}.yaml").read_text()
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


def round_trip_yaml() -> YAML:
    """A ruamel.yaml round-trip codec that keeps comments, their columns, and `null` spelled out."""
    codec = YAML()
    codec.width = 4096  # never fold a long comment line
    codec.indent(mapping=2, sequence=4, offset=2)
    codec.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return codec


def yaml_node(value: Any) -> Any:
    """A value as ruamel should write it in params.yaml: lists inline ([0.7, 1.3]), as the file has them."""
    if isinstance(value, list | tuple):
        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        return seq
    return value


def set_values(text: str, overrides: dict[str, Any]) -> str:
    """`text` (params.yaml) with the value of each dotted key replaced in place, comments kept.

    Keys must already be in the file; a ParamsError names any that are not.
    """
    codec = round_trip_yaml()
    document = codec.load(text)
    missing = []
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = document
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            missing.append(dotted)
            continue
        node[leaf] = yaml_node(value)
    if missing:
        raise ParamsError(f"params file has no line for {', '.join(sorted(missing))}: add the key(s) first")
    out = io.StringIO()
    codec.dump(document, out)
    return out.getvalue()


def apply_overrides(text: str, overrides: dict[str, Any]) -> tuple[str, Params]:
    """New params.yaml text and its validated Params; nothing is written here."""
    params_from_text(text)  # a file that is already broken is reported as it is
    new_text = set_values(text, overrides)
    return new_text, params_from_text(new_text)

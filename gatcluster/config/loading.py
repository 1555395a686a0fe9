"""Params built from params.yaml, from a mapping (a checkpoint's) or from overrides: always validated.

The schema is `params.py`'s; `validation.py` checks each field and the cross-field rules.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from gatcluster.config.params import (
    ADDITIONS_OFF,
    MOVED_KEYS,
    REMOVED_KEYS,
    Params,
    ParamsError,
    params_to_dict,
)
from gatcluster.config.validation import build_section, check_consistency, check_experiment_name, cut
from gatcluster.path_kind import Kind, look_at, missing_reason
from gatcluster.path_text import shown_path

IMAGE_SIZE_KEY = "data.image_size"  # earlier versions set it; the backbone implies it


def load_params(path: Path) -> Params:
    """Read a params.yaml file into `Params`; a missing or malformed file is a `ParamsError`."""
    problem = params_file_problem(path)
    if problem:
        raise ParamsError(f"params file {shown_path(path)} {problem}")
    return params_from_text(read_params_text(path), shown_path(path))


def params_file_problem(path: Path) -> str | None:
    """Why `path` cannot be read as a params file ("not found", "is a folder, not a file", ...),
    or None when it is a file."""
    looked = look_at(path)
    problems = {
        Kind.FILE: None,
        Kind.FOLDER: "is a folder, not a file",
        Kind.SPECIAL: "is not a regular file",
        Kind.MISSING: "not found" + missing_reason(path),
        Kind.BROKEN_LINK: "is a broken symlink",
    }
    return problems.get(looked.kind, f"cannot be read ({looked.reason})")


def read_params_text(path: Path) -> str:
    """A params file's text (UTF-8, as YAML files are); other bytes, or a file that cannot be
    read, are a one-line `ParamsError`."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ParamsError(
            f"{shown_path(path)} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset"
            f" {err.start}): save it as UTF-8 and run again"
        ) from err
    except OSError as err:  # unreadable (permissions), or a folder of that name
        raise ParamsError(f"cannot read {shown_path(path)}: {err.strerror or err}") from err


def params_from_text(text: str, where: str = "params.yaml") -> Params:
    """Parse and validate params.yaml text; a YAML syntax error is a one-line `ParamsError`."""
    try:
        raw = parse_yaml(text) or {}
    except YamlSyntaxError as err:
        raise ParamsError(f"{where} is not valid YAML ({err}): fix it and run again") from err
    params = params_from_dict(raw)
    check_experiment_name(params.mlflow.experiment)
    return params


class YamlSyntaxError(ValueError):
    """YAML text that cannot be read; the message is one line, with the place when known."""


def parse_yaml(text: str) -> Any:
    """YAML text read as DVC reads params.yaml: ruamel.yaml's safe loader, YAML 1.2.

    The same parser, so the values validated here are those `dvc params diff` and `dvc exp show`
    record: `seed: 010` is 10 (PyYAML, YAML 1.1: 8), `amp: yes` a string, `lr: 1e-3` a float,
    `<<` merges; a key given twice in one mapping is an error (PyYAML keeps the last unseen).
    """
    from ruamel.yaml import YAML, YAMLError

    try:
        return YAML(typ="safe").load(text)
    except YAMLError as err:
        raise YamlSyntaxError(yaml_error_summary(err)) from err
    except RecursionError as err:
        raise YamlSyntaxError("nested too deeply") from err
    except ValueError as err:  # an integer of more digits than Python converts (4,300)
        raise YamlSyntaxError(str(err).split(";")[0]) from err


def yaml_error_summary(err: Exception) -> str:
    """Where and what a YAML error is, in one line (the parser's own message spans several)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).strip()
    problem = cut(" ".join(problem.split()), 200)  # one line: a duplicate key's values may span several
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def params_from_dict(raw: Any) -> Params:
    """Validate a nested mapping and build `Params`; unknown keys and bad values raise.

    Keys of earlier versions get a message saying where they went (moved to `experimental`, or
    removed after screening) instead of a bare "unknown key".
    """
    check_no_legacy_keys(raw)
    params = build_section(Params, raw, "")
    check_consistency(params)
    return params


def check_no_legacy_keys(raw: Any) -> None:
    """ParamsError for a key that an earlier version had: moved (say where) or removed (say so)."""
    if not isinstance(raw, dict):
        return
    for dotted in [*MOVED_KEYS, *REMOVED_KEYS, IMAGE_SIZE_KEY]:
        section, key = dotted.split(".")
        if isinstance(raw.get(section), dict) and key in raw[section]:
            if dotted in MOVED_KEYS:
                raise ParamsError(
                    f"{dotted} is now {MOVED_KEYS[dotted]}: move the line into the experimental block"
                )
            if dotted == IMAGE_SIZE_KEY:
                raise ParamsError(
                    f"{dotted} is no longer set: the backbone fixes the input size; delete the line"
                )
            raise ParamsError(
                f"{dotted} was removed (screened and no better: docs/experiments.md); delete the line"
            )


def saved_params_from_dict(raw: Any) -> Params:
    """`params_from_dict` for params saved by an earlier version (a checkpoint's or model file's).

    A trainer addition the saved dict does not name did not exist then, so that run trained with
    it off, whatever today's default is (`experimental.relations` defaults to `spectral`, earlier
    runs used the targets). Moved keys are moved; removed switches load when they were off (any
    other value names a trainer this version no longer has: ParamsError).
    """
    if not isinstance(raw, dict):
        return params_from_dict(raw)
    filled = copy.deepcopy(raw)
    data = filled.get("data")
    if isinstance(data, dict):
        data.pop("image_size", None)  # implied by the backbone
    for old, off in REMOVED_KEYS.items():
        section, key = old.split(".")
        block = filled.get(section)
        if isinstance(block, dict) and key in block:
            value = block.pop(key)
            if off is not None and value != off:
                raise ParamsError(f"trained with {old}={value!r}, which this version no longer has")
    for old, new in MOVED_KEYS.items():
        (section, key), (new_section, new_key) = old.split("."), new.split(".")
        block = filled.get(section)
        if isinstance(block, dict) and key in block:
            filled.setdefault(new_section, {})[new_key] = block.pop(key)
    for dotted, off in ADDITIONS_OFF.items():
        section, key = dotted.split(".")
        block = filled.setdefault(section, {}) if section == "experimental" else filled.get(section)
        if isinstance(block, dict) and key not in block:
            block[key] = off
    return params_from_dict(filled)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs (a benchmark's --set) as a dict of dotted keys to values, each value read as
    the same text in params.yaml reads (YAML 1.2, as DVC reads the file: `yes` is a string, `010`
    is 10); ParamsError for a pair without `=` or a value that is not YAML."""
    overrides = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ParamsError(f"{cut(pair)!r} is not KEY=VALUE (e.g. train.lr=0.001)")
        try:
            overrides[key.strip()] = parse_yaml(value)
        except YamlSyntaxError as err:
            raise ParamsError(f"{key.strip()}: the value is not valid YAML ({err})") from err
    return overrides


def replace_params(params: Params, overrides: dict[str, Any]) -> Params:
    """A copy of `params` with dotted-key overrides applied and validated again."""
    raw = params_to_dict(params)
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for depth, key in enumerate(parents):
            node = node.setdefault(key, {})
            if not isinstance(node, dict):  # train.lr.x=1, or train=1 then train.lr=...
                raise ParamsError(f"{dotted}: {'.'.join(parents[: depth + 1])} is a value, not a section")
        node[leaf] = value
    return params_from_dict(raw)

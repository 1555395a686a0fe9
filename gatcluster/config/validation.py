"""Validation of a params mapping: types, ranges and choices per field, then cross-field rules.

`loading.params_from_dict` calls `build_section` on the nested mapping and `check_consistency` on
the result; every problem is a `ParamsError` naming the dotted key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from typing import Any

from gatcluster.config.params import GREYSCALE_SOURCES, Params, ParamsError


def build_section(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "params"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{where} must be a mapping of keys to values, got {shown(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields), key=str)  # YAML keys need not be strings: `? [a]`
    if unknown:
        key = str(unknown[0])
        raise ParamsError(
            f"unknown key {prefix}{cut(key)}{did_you_mean(key, fields, prefix)}: allowed keys in {where}"
            f" are {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, fld in fields.items():
        if name in raw:
            values[name] = _convert(hints[name], raw[name], f"{prefix}{name}", fld.metadata)
    return cls(**values)


def did_you_mean(key: str, known: typing.Iterable[str], prefix: str) -> str:
    """ " (did you mean train.lr?)" for a mistyped key close to one of `known`, else ""."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.7)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def _convert(hint: Any, value: Any, key: str, meta: Any) -> Any:
    if dataclasses.is_dataclass(hint):
        return build_section(hint, value, f"{key}.")
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is tuple:
        return _convert_pair(value, key, meta)
    value = _check_type(hint, value, key)
    _check_metadata(value, key, meta)
    return value


def _check_type(hint: Any, value: Any, key: str) -> Any:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not is_finite(value):  # .nan passes every range check; .inf would train on nothing
            raise ParamsError(f"{key} must be a finite number, got {shown(value)}")
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    raise ParamsError(f"{key} must be {names[hint]}, got {shown(value)}")


def is_finite(number: int | float) -> bool:
    """Whether `number` is a finite float or an integer a float can hold (YAML has no size limit)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def shown(value: Any) -> str:
    """`value` as written in messages (its repr), cut to 80 characters: an error stays one line."""
    return cut(repr(value))


def cut(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters, the cut marked with '...'."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _check_metadata(value: Any, key: str, meta: Any) -> None:
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ParamsError(f"{key} must be one of {', '.join(choices)}; got {shown(value)}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and (value < lo or (meta.get("min_open") and value == lo)):
        bound = f"> {lo}" if meta.get("min_open") else f">= {lo}"
        raise ParamsError(f"{key} must be {bound}, got {shown(value)}")
    if hi is not None and value > hi:
        raise ParamsError(f"{key} must be <= {hi}, got {shown(value)}")


def _convert_pair(value: Any, key: str, meta: Any) -> tuple[float, float]:
    """A [low, high] pair of finite numbers within the field's range (its metadata's min / max)."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    numbers = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ok = numbers and all(is_finite(v) for v in value)
    lo, hi = meta["min"], meta["max"]
    if not ok or not lo <= value[0] <= value[1] <= hi:
        raise ParamsError(
            f"{key} must be a pair [low, high] with {lo} <= low <= high <= {hi}, got {shown(value)}"
        )
    return (float(value[0]), float(value[1]))


def check_consistency(params: Params) -> None:
    train = params.train
    if train.sub_batch > train.large_batch:
        raise ParamsError(
            f"train.sub_batch ({train.sub_batch}) must be <= train.large_batch ({train.large_batch})"
        )
    neighbours = params.experimental.neighbours
    if neighbours >= train.large_batch:
        raise ParamsError(
            f"experimental.neighbours ({neighbours}) must be < train.large_batch ({train.large_batch}): "
            "neighbours are taken inside each large batch"
        )
    for key in ("large_batch", "sub_batch"):
        if getattr(train, key) % train.processes:
            raise ParamsError(
                f"train.{key} ({getattr(train, key)}) must be a multiple of train.processes "
                f"({train.processes}): every process takes an equal share of each batch"
            )
    if params.augment.hue > 0 and params.data.source in GREYSCALE_SOURCES:
        raise ParamsError(
            f"augment.hue ({params.augment.hue}) shifts colours, but data.source {params.data.source} "
            "is greyscale: set augment.hue: 0"
        )
    check_registered_model(params.export.registered_model)
    check_data_root(params.data.root)
    k, over = params.model.num_clusters, params.experimental.overcluster
    if over and over <= k:
        raise ParamsError(
            f"experimental.overcluster must be 0 (off) or more than model.num_clusters ({k}), got {over}"
        )
    for key, clusters in (("model.num_clusters", k), ("experimental.overcluster", over)):
        if clusters >= train.large_batch:
            raise ParamsError(
                f"{key} ({clusters}) must be less than train.large_batch ({train.large_batch}): "
                "each large batch is clustered into that many groups for the targets"
            )
    if not any(dataclasses.astuple(train.loss_weights)):
        raise ParamsError("train.loss_weights are all 0: nothing would be trained; keep at least one above 0")


def check_data_root(root: str | None) -> None:
    """A data.root the file system can take: no NUL character, nothing that encodes to no file-name
    bytes (a lone surrogate such as YAML's "\\ud800"); both raised from deep inside a stat."""
    if root is None:
        return
    try:
        refused = b"\0" in os.fsencode(root)
    except UnicodeEncodeError:
        refused = True
    if refused:
        raise ParamsError(f"data.root must be a path a file system can hold, got {shown(root)}")


URI_DELIMITERS = "/:?"  # characters a models:/ URI cannot carry in a model's name


def check_registered_model(name: str | None) -> None:
    """An MLflow registered-model name: not blank, none of '/', ':', '?' (they delimit models:/
    URIs, which MLflow parses as URLs: `models:/a?b/1` names model `a`), and printable without
    spaces at either end (models:/ URIs and `gat promote` must be able to name it)."""
    if name is None:
        return
    printable = name.isprintable() and name == name.strip()
    if not name.strip() or any(c in name for c in URI_DELIMITERS) or not printable:
        raise ParamsError(
            "export.registered_model must be a name without '/', ':', '?', control characters or spaces"
            f" at either end (or null: register nothing), got {shown(name)}"
        )


EXPERIMENT_NAME_LIMIT = 500  # MLflow's longest experiment name (its store refuses longer ones)


def check_experiment_name(name: str | None) -> None:
    """An MLflow experiment name: printable, not blank, no spaces at either end, at most 500
    characters. Checked on params.yaml (not on the params a model or checkpoint saved: tracking
    does not change what they hold), because MLflow refuses it only when the train stage starts
    its run, after `dvc repro` has removed the stage's earlier outputs."""
    if name is None:
        return
    printable = name.isprintable() and name == name.strip()
    if not name.strip() or not printable or len(name) > EXPERIMENT_NAME_LIMIT:
        raise ParamsError(
            f"mlflow.experiment must be a name of at most {EXPERIMENT_NAME_LIMIT} characters without control"
            f" characters or spaces at either end (or null: gatcluster-<source>), got {shown(name)}"
        )

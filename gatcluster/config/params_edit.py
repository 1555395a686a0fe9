"""Presets and in-place edits of params.yaml that keep its comments and layout.

A preset is shipped as `gatcluster/config/presets/<name>.yaml`, naming what it changes. Applying one
sets every key that any preset sets: to the preset's value, or else to the default. So presets are
complete and their order does not matter (A then B equals B), while the keys no preset touches
(device, processes, intervals, MLflow) stay the user's. data.root, which no preset sets, belongs to
its source: a preset that moves to a source reading another kind of root (an image folder, an
ImageNet tree, an offline copy) resets it to null, so fetch never reads a user's image folder as a
CIFAR copy or downloads archives into it. The file is rewritten in place (a
ruamel.yaml round trip: comments and layout stay) and validated as a whole, so a preset can never
leave an invalid params.yaml behind.
"""

from __future__ import annotations

import io
import re
from importlib import resources
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from gatcluster.config.loading import YamlSyntaxError, params_from_text, parse_yaml
from gatcluster.config.params import DATA_ROOT_KINDS, DataConfig, Params, ParamsError, flatten_params
from gatcluster.config.validation import did_you_mean


def preset_names() -> list[str]:
    """Names of the shipped presets."""
    files = resources.files("gatcluster.config").joinpath("presets").iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """The shipped file of preset `name` (UTF-8, whatever the locale's encoding)."""
    file = resources.files("gatcluster.config").joinpath("presets", f"{name}.yaml")
    return file.read_text(encoding="utf-8")


def preset_overrides(name: str) -> dict[str, Any]:
    """The dotted-key overrides of preset `name`; a ParamsError listing the presets if unknown."""
    if name not in preset_names():
        hint = did_you_mean(name, preset_names(), "")
        raise ParamsError(f"unknown preset {name!r}{hint}; available: {', '.join(preset_names())}")
    return flatten(parse_yaml(preset_text(name)) or {})  # read as params.yaml is


def preset_keys() -> set[str]:
    """Every dotted key that some preset sets: what applying any preset decides."""
    return {key for name in preset_names() for key in preset_overrides(name)}


def preset_values(name: str) -> dict[str, Any]:
    """The complete preset `name`: its own values, and the default of every other preset key."""
    defaults = flatten_params(Params())
    return {key: defaults[key] for key in sorted(preset_keys())} | preset_overrides(name)


def root_reset(data: DataConfig, new_source: str) -> dict[str, Any]:
    """{"data.root": None} when `new_source` reads a root of another kind than `data.root` was set
    for, else {}. A new source that reads no root keeps it (ignored there, back in use later)."""
    new_kind = DATA_ROOT_KINDS[new_source]
    if data.root is None or new_kind is None or new_kind == DATA_ROOT_KINDS[data.source]:
        return {}
    return {"data.root": None}


def preset_description(name: str) -> str:
    """The first comment line of a preset file."""
    text = preset_text(name)
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


def round_trip_yaml(text: str = "") -> YAML:
    """A ruamel.yaml round-trip codec that keeps comments, their columns, and the layout of `text`:
    its indentation (`dvc exp run -S` writes block lists' dashes at the key's column, this project
    two spaces in) and its spelling of null (`null`, or nothing after the colon as DVC writes it)."""
    codec = YAML()
    codec.width = 4096  # never fold a long comment line
    mapping, offset = guess_indent(text)
    codec.indent(mapping=mapping, sequence=offset + 2, offset=offset)  # "- " then the item
    null = null_spelling(text, has_bare_null(codec.load(text)))
    codec.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", null)
    )
    return codec


OPEN_KEY = re.compile(r"^( *)[^\s#-][^#]*:[ \t]*(#.*)?$")  # a key whose value starts on the next line
CONTENT = re.compile(r"^( *)[^\s#]")  # a line that is neither blank nor a comment


def guess_indent(text: str) -> tuple[int, int]:
    """(spaces per nested mapping, column of a block list's dash after its key's) in `text`, read
    from the first key whose value, a mapping or a list, starts on the next line (a block scalar's
    text or a top-level list of mappings is not taken for one); the project's (2, 2) where `text`
    shows none. (ruamel's own guess reads column-aligned comments wrong.)"""
    mapping = offset = parent = None
    for line in text.splitlines():
        content = CONTENT.match(line)
        if content is None:
            continue
        column = len(content.group(1))
        if parent is not None and line[column] == "-" and column >= parent and offset is None:
            offset = column - parent
        elif parent is not None and line[column] != "-" and column > parent and mapping is None:
            mapping = column - parent
        opened = OPEN_KEY.match(line)
        parent = len(opened.group(1)) if opened else None
    return mapping or 2, 2 if offset is None else offset


# A value spelled as null on a line that is not a comment (`#  root: null` of DVC's is not one).
SPELLED_NULL = re.compile(r"^[^#\n]*:[ \t]+(null|Null|NULL|~)[ \t]*(#.*)?$", re.MULTILINE)


def null_spelling(text: str, bare_null: bool) -> str:
    """How `text` writes null: nothing after the colon where it has only such nulls (as DVC writes
    them), `~` where it spells every null so, else `null`."""
    spelled = {match.group(1) for match in SPELLED_NULL.finditer(text)}
    if bare_null and not spelled:
        return ""
    return "~" if spelled == {"~"} else "null"


def has_bare_null(node: Any) -> bool:
    """Whether a loaded document holds a mapping key whose value is null, at any depth."""
    if isinstance(node, dict):
        return any(value is None or has_bare_null(value) for value in node.values())
    return False


def yaml_node(value: Any) -> Any:
    """A value as ruamel should write it in params.yaml: lists inline ([0.7, 1.3]), as the file has them."""
    if isinstance(value, list | tuple):
        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        return seq
    return value


def replace_items(seq: CommentedSeq, values: list[Any]) -> None:
    """`seq`'s items set to `values` one by one, so the comment after each stays with its place; the
    last item's, which holds the blank lines and comments up to the next key, stays last (where the
    list shrinks, it takes the place of the comment of the item that becomes last)."""
    old_last = len(seq) - 1
    tail = seq.ca.items.pop(old_last, None)
    for i, value in enumerate(values):
        if i < len(seq):
            seq[i] = value
        else:
            seq.append(value)
    del seq[len(values) :]
    for i in [i for i in seq.ca.items if i >= len(values)]:
        del seq.ca.items[i]
    if tail is not None and values:
        seq.ca.items[len(values) - 1] = tail


UNLISTED_BLOCK = "experimental"  # the block params.yaml lists empty: only keys that differ appear


# The lines ruamel drops on a round trip: comments and directives (`%YAML 1.2`) up to a document
# start marker `---` (after a byte order mark, if any), and a document end marker `...` with what
# follows it. They are cut off before the edit and put back verbatim, CRLF line ends included.
DOCUMENT_START = re.compile(r"\A\ufeff?(?:[ \t]*(?:[#%][^\n]*)?\r?\n)*---[ \t]*(?:#[^\n]*)?(?:\r?\n|\Z)")
DOCUMENT_END = re.compile(r"^\.\.\.[ \t]*(?:#[^\n]*)?\r?$(?:\n[ \t]*(?:#[^\n]*)?\r?$)*\n?\Z", re.MULTILINE)


def split_markers(text: str) -> tuple[str, str, str]:
    """`text` as (lines up to and including `---`, the document, `...` and the lines after it);
    either end is empty where the file has no such marker."""
    start = DOCUMENT_START.match(text)
    head = start.group(0) if start else ""
    body = text[len(head) :]
    end = DOCUMENT_END.search(body)
    tail = end.group(0) if end else ""
    return head, body[: len(body) - len(tail)], tail


def set_values(text: str, overrides: dict[str, Any]) -> str:
    """`text` (params.yaml) with the value of each dotted key replaced in place, comments kept.

    A key the file does not list is added (with its block) unless the value is its default, which
    an absent key already means: params.yaml stays free of the `experimental` block until a value
    there differs, and a key of that block set back to its default is removed again (so `faithful`
    then `mnist` leaves the file as `mnist` alone does, and DVC sees no changed params).
    A `---` with the comments above it and a `...` with the lines after it stay as they are.
    """
    head, body, tail = split_markers(text)
    return head + set_document_values(body, overrides) + tail


def set_document_values(text: str, overrides: dict[str, Any]) -> str:
    """`set_values` on the document itself (no `---` or `...` markers)."""
    codec = round_trip_yaml(text)
    document = codec.load(text)
    # An empty or comment-only file loads as None, a section whose keys are all commented out
    # (`data:`) as a None value: both stand for "all defaults" and take the keys set here.
    empty = document is None
    if empty:
        document = CommentedMap()
    defaults = flatten_params(Params())
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = document
        for key in parents:
            if not isinstance(node, dict):
                break
            if node.get(key) is None and defaults.get(dotted, object()) != value:
                node[key] = CommentedMap()
            node = node.get(key)
        at_default = defaults.get(dotted, object()) == value
        if not isinstance(node, dict) or (leaf not in node and at_default):
            continue  # absent and at its default
        unlisted = parents == [UNLISTED_BLOCK] and isinstance(node, CommentedMap)
        # ruamel keeps the comment lines after a key with that key: one carrying any stays.
        if at_default and unlisted and leaf in node and leaf not in node.ca.items:
            del node[leaf]  # back to the block's "all defaults" form
            if not node and isinstance(node, CommentedMap):
                node.fa.set_flow_style()  # `experimental: {}` on its line, its comment kept
            continue
        if leaf not in node and isinstance(node, CommentedMap):
            node.fa.set_block_style()  # `experimental: {}` grows into a block, one key per line
        current = node.get(leaf)
        if leaf in node and current == value and isinstance(current, bool) == isinstance(value, bool):
            continue  # the same value (20 for 20.0): left as the file spells it
        if isinstance(value, float) and value.is_integer() and type(current) is int:
            value = int(value)  # a whole number where the file spells the key as one: 20, not 20.0
        if isinstance(current, CommentedSeq) and isinstance(value, list | tuple):
            # Items replaced in place: the list keeps its style and the comment ruamel attaches to
            # it. `dvc exp run -S` writes lists as blocks with the key's comment before the first
            # item; a new inline list there would carry that comment into the next key's line.
            replace_items(current, list(value))
        elif unlisted and leaf not in node:  # in sorted place: the same keys read alike in any order
            node.insert(sum(key < leaf for key in node), leaf, yaml_node(value))
        else:
            node[leaf] = yaml_node(value)
    out = io.StringIO()
    codec.dump(document, out)
    comments = comment_lines(text) if empty else ""
    if comments:  # a file that held only comments (and perhaps `null`) keeps them on top
        return comments + out.getvalue()
    return out.getvalue()


def comment_lines(text: str) -> str:
    """The comment lines of `text` and the blank lines between them, each ending in a newline;
    "" where it has none. An empty document's `null` or `~` is left out."""
    kept = [line for line in text.splitlines() if not line.strip() or line.lstrip().startswith("#")]
    return "\n".join(kept).strip("\n") + "\n" if any(line.strip() for line in kept) else ""


def apply_overrides(text: str, overrides: dict[str, Any], where: str = "params.yaml") -> tuple[str, Params]:
    """New params.yaml text and its validated Params; nothing is written here. `where` names the
    file in messages."""
    params_from_text(text, where)  # a file that is already broken is reported as it is
    new_text = set_values(text, overrides)
    try:
        parse_yaml(new_text)
    except YamlSyntaxError as err:  # the rewrite's fault, not the file's: say so
        raise ParamsError(
            f"rewriting {where} in place would break its YAML ({err}); {where} is"
            " unchanged: set the values by hand, and please report this with the file"
        ) from err
    return new_text, params_from_text(new_text, where)

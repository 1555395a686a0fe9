"""How a file name is written out: as text any UTF-8 writer takes (`path_text`, for tables and
HTML), and as one safe line of a message (`shown_path`). The one owner of that rule, for every
layer that names a path: data (skipped files), config and pipeline (params, `data.root`),
serving (model files, `gat predict`), tracking (store paths) and the CLI.
"""

from __future__ import annotations

import os
import re


def path_text(path: str | os.PathLike) -> str:
    """`path` as text any UTF-8 writer takes (tables, HTML): the bytes of a file name that are not
    UTF-8, which Python keeps as lone surrogates that no encoder accepts, become `\\xNN` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# Characters that end or rewrite a terminal line: C0 and C1 controls, Unicode line separators.
LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def shown_path(path: str | os.PathLike) -> str:
    """`path_text` for a line of a message or of a one-line-per-file list (skipped.tsv): a newline,
    tab or other control character in a file name as its escape (`\\n`, `\\t`, `\\x1b`), so one file
    stays one line and cannot pass for another. Tables keep the exact name (`path_text`)."""
    return one_line(path_text(path))


def one_line(text: str) -> str:
    """`text` with every character that ends or rewrites a terminal line as its escape: for names
    read from a file (a model's cluster names) that a message or a terminal line shows."""
    return LINE_BREAKING.sub(lambda m: repr(m.group())[1:-1], text)

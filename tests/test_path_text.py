"""How a file name is written out: exact in tables, escaped to one line in messages."""

from __future__ import annotations

import os
from pathlib import Path

from gatcluster.path_text import path_text, shown_path


def test_path_text_keeps_a_name_and_escapes_only_bytes_that_are_not_utf8():
    assert path_text(Path("photos/été 1.jpg")) == "photos/été 1.jpg"
    assert path_text(os.fsdecode(b"photos/caf\xe9.jpg")) == "photos/caf\\xe9.jpg"
    assert path_text("tab\there") == "tab\there"  # tables keep the exact name
    path_text(os.fsdecode(b"\xff\xfe")).encode("utf-8")  # any UTF-8 writer takes it


def test_shown_path_is_one_line_whatever_the_name_holds():
    # A line separator (U+2028) too: a bytes literal cannot spell it (Python 3.12+ warned).
    name = os.fsdecode(b"a\nb\tc\x1b[31md\xe9") + "\u2028e"
    shown = shown_path(name)
    assert shown == "a\\nb\\tc\\x1b[31md\\xe9\\u2028e"
    assert shown.isprintable() and "\n" not in shown
    assert shown_path(Path("plain/name.png")) == "plain/name.png"

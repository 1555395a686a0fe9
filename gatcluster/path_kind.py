"""What a path the user gave is, from one stat: the one place that tells a regular file from a
folder, a FIFO or device, a missing path, a broken link and a path that cannot be looked at.

Reading a FIFO blocks until something writes to it, and `Path.is_file()` / `is_dir()` pass some
errors on (a name over 255 bytes, a folder without the execute bit), so callers ask here first and
word their own messages: the params file (config), walked images (data), `data.root` and other
folders (pipeline), a model file (serving).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from gatcluster.path_text import shown_path


class Kind(Enum):
    """What `look_at` found at a path."""

    FILE = "file"
    FOLDER = "folder"
    SPECIAL = "not a regular file"  # a FIFO, device or socket
    MISSING = "no such file or folder"
    BROKEN_LINK = "broken symlink"  # a link to nothing, or a loop of links
    UNREADABLE = "unreadable"  # stat refused: permissions, a name over 255 bytes


@dataclass(frozen=True)
class Looked:
    """The kind of a path, and for UNREADABLE the system's reason ("Permission denied")."""

    kind: Kind
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.kind.value} ({self.reason})" if self.kind is Kind.UNREADABLE else self.kind.value


def look_at(path: Path) -> Looked:
    """The kind of `path`, following links; never raises for what the file system refuses."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            # The path itself a link to nothing (or to a loop of links), or a folder on the way
            # missing or looping: is_symlink looks at the last name only.
            return Looked(Kind.BROKEN_LINK if path.is_symlink() else Kind.MISSING)
        return Looked(Kind.UNREADABLE, err.strerror or type(err).__name__)
    if stat.S_ISDIR(mode):
        return Looked(Kind.FOLDER)
    return Looked(Kind.FILE if stat.S_ISREG(mode) else Kind.SPECIAL)


def missing_reason(path: Path) -> str:
    """For a missing `path` below something that is no folder, what that is, to append to "not
    found": " (a.onnx is a file, not a folder)", " (x is a broken symlink)"; else "". It tells a path
    through a file from a mistyped name."""
    found = nearest_existing(path)
    if found is None or found[1].kind is Kind.FOLDER:
        return ""
    return f" ({not_a_folder(*found)})"


def creation_problem(path: Path) -> str | None:
    """Why a missing `path` could not be created, missing folders above it included, or None: the
    first thing above it that exists must be a writable folder (not a file, a broken link, a loop)."""
    found = nearest_existing(path)
    if found is None:
        return None
    above, looked = found
    if looked.kind is Kind.FOLDER:
        return None if os.access(above, os.W_OK) else f"{shown_path(above)} is not writable"
    return not_a_folder(above, looked)


def nearest_existing(path: Path) -> tuple[Path, Looked] | None:
    """`path` or, where it is missing, the nearest folder above it that is there (or whatever is
    there in its place, a file or a broken link), and its kind; None when nothing is."""
    for above in (path, *path.parents):
        looked = look_at(above)
        if looked.kind is not Kind.MISSING:
            return above, looked
    return None


def not_a_folder(above: Path, looked: Looked) -> str:
    """Why `above`, which `looked` found to be no folder, cannot hold anything (its name as
    `shown_path`: these clauses end up in one-line messages)."""
    shown = shown_path(above)
    if looked.kind is Kind.UNREADABLE:
        return f"{shown} cannot be looked up ({looked.reason})"
    if looked.kind is Kind.BROKEN_LINK:
        return f"{shown} is a broken symlink"
    return f"{shown} is a file, not a folder"

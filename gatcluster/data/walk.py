"""Finding image files: one recursive walk for the `folder` source and `gat predict`, and the
files of one folder (`files_in`: an ImageNet class folder), each entry classified the same way.

Entries are visited in sorted order, hidden ones (a leading dot) are ignored, symlinked folders
are followed once each (so loops end), and what cannot be read is reported, not raised. A folder
that `gat predict` wrote (its --sort-into links, --gallery cards, --attention-dir overlays), told
by the OUTPUT_MARKER file in it, is skipped inside a walk: those are not new images, and a later
`gat predict` of the folder above, or a `folder` source reading it, would take them for some.
A folder named as a path itself is walked all the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from gatcluster.path_kind import Kind, look_at

OUTPUT_MARKER = ".gatcluster-output"
OUTPUT_MARKER_TEXT = (
    "This folder holds output of `gat predict` (links, gallery or attention overlays). gatcluster\n"
    "skips it when it walks a folder above it; delete this file to have it read as images again.\n"
)


def is_output_folder(folder: Path) -> bool:
    """Whether `folder` carries the marker of a `gat predict` output folder (False where the folder
    cannot be entered: the walk then reports it as unreadable)."""
    try:
        return (folder / OUTPUT_MARKER).is_file()
    except OSError:  # is_file() passes EACCES on
        return False


def listed(names: list[str], limit: int) -> str:
    """`names` joined by commas: the first `limit`, then how many there are in all."""
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def left_out_note(folders: list[str], limit: int, to: str) -> str:
    """The line naming the marked output folders a walk left out and how to have them read (`to`:
    what for)."""
    shown = listed(folders, limit)
    return f"left out the gat predict output in {shown}: delete a folder's {OUTPUT_MARKER} to {to}"


def output_folders_below(root: Path) -> list[Path]:
    """The marked output folders that a walk of `root` leaves out. Lists the tree, decodes nothing."""
    found: list[Path] = []
    for _ in walk_files([root], found):
        pass
    return found


def mark_output_folder(folder: Path) -> None:
    """Put the marker into `folder`, so that walks from above skip it (see the module docstring)."""
    marker = folder / OUTPUT_MARKER
    if not marker.is_file():
        marker.write_text(OUTPUT_MARKER_TEXT)


class SkippedFile(NamedTuple):
    """An input left out, and why ("broken symlink", "truncated image", ...)."""

    path: Path
    reason: str


def walk_files(
    paths: Iterable[Path], output_folders: list[Path] | None = None
) -> Iterator[Path | SkippedFile]:
    """Files under `paths` (folders recursively, sorted); missing paths come back as SkippedFile.

    The marked output folders it leaves out are appended to `output_folders` when one is given, for
    the caller to say so: unlike hidden files, they may hold images someone wants.
    """
    seen: set[Path] = set()
    left_out = output_folders if output_folders is not None else []
    for path in paths:
        looked = look_at(path)
        if looked.kind is Kind.FOLDER:
            yield from _walk_folder(path, seen, left_out)
        elif looked.kind is Kind.FILE:
            yield path
        else:
            yield SkippedFile(path, str(looked))


def files_in(folder: Path) -> Iterator[Path | SkippedFile]:
    """The files directly in `folder` (sorted, hidden entries ignored, sub-folders not entered), and
    as SkippedFile what is there but not a file to read (a FIFO, a broken link), as in a walk."""
    return (item for item in _folder_items(folder) if not isinstance(item, _Subfolder))


def _walk_folder(folder: Path, seen: set[Path], left_out: list[Path]) -> Iterator[Path | SkippedFile]:
    real = folder.resolve()
    if real in seen:
        return  # a symlink loop or a folder reached twice
    seen.add(real)
    for item in _folder_items(folder):
        if not isinstance(item, _Subfolder):
            yield item
        elif is_output_folder(item.path):
            left_out.append(item.path)
        else:
            yield from _walk_folder(item.path, seen, left_out)


class _Subfolder(NamedTuple):
    path: Path


def _folder_items(folder: Path) -> Iterator[Path | SkippedFile | _Subfolder]:
    """The visible entries of `folder`, sorted: files, sub-folders, and SkippedFile for the rest; a
    folder that cannot be listed, or whose entries cannot be looked at, is one SkippedFile."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as err:
        yield SkippedFile(folder, f"unreadable folder ({err.strerror})")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        looked = look_at(entry)
        if looked.kind is Kind.UNREADABLE and not can_enter(entry):
            # listed but not entered (mode r--): every entry fails alike, say it once
            yield SkippedFile(folder, f"unreadable folder ({looked.reason})")
            return
        if looked.kind is Kind.FOLDER:
            yield _Subfolder(entry)
        else:
            yield entry if looked.kind is Kind.FILE else SkippedFile(entry, str(looked))


def can_enter(entry: Path) -> bool:
    """Whether the folder holding `entry` lets its entries be looked at (lstat: the entry itself,
    not what a link points to)."""
    try:
        entry.lstat()
    except OSError:
        return False
    return True

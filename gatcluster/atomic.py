"""Atomic file writes: write beside the target, rename into place only when writing completed.

A crash, a Ctrl-C or an exception while writing leaves the previous file (or none) in place and
no temporary file behind, so readers never see half-written checkpoints, reports or tables.
Finished files and folders get ordinary permissions (0666 / 0777 less the umask), not the private
0600 / 0700 of temporary files, so teammates and web servers can read models and reports.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def ordinary_mode(directory: bool = False) -> int:
    """The mode a plain `open()` or `mkdir()` would give: 0666 or 0777 less the umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A fresh temporary folder in `parent` with ordinary permissions, to be renamed into place."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    tmp.chmod(ordinary_mode(directory=True))
    return tmp


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A fresh temporary path in `path`'s folder; renamed onto `path` if the block completes.

    The folder is created if needed. On any exception (KeyboardInterrupt included) the temporary
    file is removed and `path` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.is_file():
            tmp.chmod(ordinary_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as indented JSON (with a final newline) to `path` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")

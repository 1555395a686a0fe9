"""The local cache of registry model versions that `gat predict --model models:/...` serves from.

One folder per registered version, named by a hash of what identifies it: the registry (its URI,
a relative SQLite path made absolute), the model's name, the version number, and when and from
where that version was registered. A version never changes, but a store rebuilt under the same URI
numbers other models 1, 2, ... again, and two projects may share a relative URI: neither is served
the other's model. A folder is published whole (renamed into place) with a manifest of its files
and their sizes; an entry whose files no longer match it (one deleted by hand) is fetched again.
Files get ordinary permissions, so a cache shared by a team (GAT_CACHE_DIR) serves everyone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from gatcluster.atomic import make_temp_dir, publish_dir

MANIFEST = ".complete.json"  # {relative path: size in bytes} of a finished entry


def absolute_store_uri(tracking_uri: str) -> str:
    """`tracking_uri` with a relative SQLite path made absolute (it names another store elsewhere)."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix) and not tracking_uri.removeprefix(prefix).startswith("/"):
        return prefix + os.path.abspath(tracking_uri.removeprefix(prefix))
    return tracking_uri


def entry_folder(cache_root: Path, tracking_uri: str, identity: list[str]) -> Path:
    """The cache folder of the version that `identity` (name, number, registration details) names
    in the registry at `tracking_uri`."""
    key = "\n".join([absolute_store_uri(tracking_uri), *identity])
    return cache_root / "models" / hashlib.sha256(key.encode()).hexdigest()[:32]


def is_complete(folder: Path) -> bool:
    """Whether `folder` holds every file of its manifest, each of its recorded size."""
    try:
        sizes = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return all((folder / name).stat().st_size == size for name, size in sizes.items())
    except (OSError, ValueError, AttributeError):  # absent, unreadable or not a manifest
        return False


def finish_entry(tmp: Path) -> None:
    """Give the downloaded files in `tmp` ordinary permissions and write their manifest."""
    # `tmp` was made with mode 0777 less the umask: its mode is the umask's answer, unread.
    folder_mode = tmp.stat().st_mode & 0o777
    sizes = {}
    for path in sorted(tmp.rglob("*")):
        os.chmod(path, folder_mode if path.is_dir() else folder_mode & 0o666)
        if path.is_file():
            sizes[path.relative_to(tmp).as_posix()] = path.stat().st_size
    (tmp / MANIFEST).write_text(json.dumps(sizes, indent=2) + "\n", encoding="utf-8")


def fill_entry(folder: Path, download: Callable[[Path], None]) -> None:
    """Fill the cache entry `folder` with what `download(into)` writes, whole or not at all: a
    temporary folder beside it is renamed into place. OSError where the cache cannot be written."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(folder.parent, f".{folder.name}-")
    try:
        download(tmp)
        finish_entry(tmp)
        if folder.exists() and not is_complete(folder):  # set aside (renamed onto an empty folder), removed
            stale = make_temp_dir(folder.parent, f".{folder.name}-")
            with contextlib.suppress(FileNotFoundError):  # another process set it aside first
                folder.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            publish_dir(tmp, folder)
        except OSError:
            if not is_complete(folder):  # not a concurrent `gat predict` that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

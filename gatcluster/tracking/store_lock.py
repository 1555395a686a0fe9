"""One process at a time opens a new SQLite store: MLflow creates its tables on first use, and two
processes doing so at once fail ("table secrets already exists", "duplicate column name: step").

`dvc queue start -j 2` on a fresh clone starts two train stages on one not yet existing mlflow.db;
the second failed. The lock is an advisory `flock` on the folder that holds the database: no file
is added beside the store, and SQLite's own (fcntl) locks on the database file are left alone.
Where the platform has no `flock` (Windows) or the folder refuses it, stages open the store as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from gatcluster.tracking.store_uri import sqlite_path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


@contextmanager
def one_store_opener_at_a_time(uri: str) -> Iterator[None]:
    """Hold an exclusive lock, shared by every process opening the `sqlite:///` store at `uri`, for
    the block; other URIs (a tracking server, PostgreSQL) need none and get none."""
    if fcntl is None or not uri.startswith("sqlite:///") or ":memory:" in uri:
        yield
        return
    parent = sqlite_path(uri).absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)  # MLflow would make it, but after the lock
        folder = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # a folder that cannot be made or read: the store's own errors say more
        yield
        return
    try:
        with suppress(OSError):  # a file system without flock (some network mounts): no lock
            fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # releases the lock

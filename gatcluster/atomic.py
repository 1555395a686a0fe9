"""Atomic, durable file writes: write beside the target, flush to disk, rename into place.

A crash, a Ctrl-C, an exception or a power cut while writing leaves the previous file (or none)
in place and no temporary file behind, so readers never see half-written checkpoints, reports or
tables. The written data and the rename are fsynced before the call returns.

Finished files and folders get ordinary permissions (0666 / 0777 less the umask), not the private
0600 / 0700 of `tempfile`'s files, so teammates and web servers can read models and reports. The
kernel applies the umask when the temporary is created with mode 0666 / 0777, so the umask is
never read: reading it means setting it, which would briefly give files that other threads create
meanwhile (the system metrics sampler, the read-ahead) a wrong mode.

Temporary names carry the writer's process id. A writer killed with SIGKILL (or a power cut)
cannot remove its temporary; the next write into the same folder with the same prefix removes
every such leftover whose process is gone, so they never pile up or get cached as outputs.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gatcluster.path_kind import Kind, look_at

_TEMP_NAME_TRIES = 100
NAME_LIMIT = 255  # bytes of one file name on ext4, XFS, Btrfs, APFS and most others


class WriteError(OSError):
    """A file could not be written (a full disk, a write error); says which and what was kept."""

    def __str__(self) -> str:
        return str(self.strerror)  # the message alone, without OSError's "[Errno 28]"


def _temp_candidates(parent: Path, prefix: str) -> Iterator[Path]:
    remove_stale_temporaries(parent, prefix)
    for _ in range(_TEMP_NAME_TRIES):
        yield parent / f"{prefix}{os.getpid()}-{secrets.token_hex(6)}"
    raise FileExistsError(f"no free temporary name in {parent} after {_TEMP_NAME_TRIES} tries")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def remove_stale_temporaries(parent: Path, prefix: str) -> list[Path]:
    """Remove the temporaries `prefix<pid>-...` in `parent` whose writing process is gone; them."""
    removed = []
    for leftover in parent.glob(f"{prefix}*"):
        pid = leftover.name[len(prefix) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def make_temp_file(parent: Path, prefix: str) -> Path:
    """A fresh empty file in `parent` with ordinary permissions (0666 less the umask)."""
    for candidate in _temp_candidates(parent, prefix):
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise AssertionError("unreachable")  # _temp_candidates raises when it runs out


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A fresh temporary folder in `parent` with ordinary permissions, to be renamed into place."""
    for candidate in _temp_candidates(parent, prefix):
        try:
            candidate.mkdir(mode=0o777)
        except FileExistsError:
            continue
        return candidate
    raise AssertionError("unreachable")


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (a rename into it), to the disk."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file and folder under `folder` (bottom up) and `folder` itself."""
    for root, _, files in os.walk(folder, topdown=False):
        for name in files:
            fsync_path(Path(root) / name)
        fsync_path(Path(root))


def publish_dir(tmp: Path, dest: Path) -> None:
    """Rename the completed folder `tmp` onto the absent `dest`, durably (contents, then the rename)."""
    fsync_tree(tmp)
    tmp.rename(dest)
    fsync_path(dest.parent)


# A process's open descriptors as Linux shows them: /dev/stdout and /dev/fd/N lead here.
DESCRIPTOR_FOLDER = re.compile(r"/proc/(self|thread-self|\d+)(/task/\d+)?/fd")


def is_open_descriptor(path: Path) -> bool:
    """Whether `path` names an open descriptor of a process (/dev/stdout, /dev/fd/1, /proc/self/fd/1)
    rather than a file: where the shell redirected stdout (`>> all.csv`) it resolves to that file,
    and a rename onto it would replace what the file held before this command."""
    name, hops = os.fspath(path), 0
    while hops < 40:  # the kernel's own limit on links followed
        if DESCRIPTOR_FOLDER.fullmatch(os.path.realpath(os.path.dirname(name)) or ""):
            return True
        if not os.path.islink(name):
            return False
        name, hops = os.path.join(os.path.dirname(name), os.readlink(name)), hops + 1
    return False


def file_target(path: Path) -> Path:
    """Where writing `path` lands: a symbolic link's target (the link stays a link), else `path`.

    A WriteError, before anything is written, when that is something other than a regular file
    (a folder, a device such as /dev/null, a FIFO, a socket, a process's open descriptor such as
    /dev/stdout): a rename would replace it.
    """
    if is_open_descriptor(path):
        said = f"cannot write {path}: it is an open descriptor (such as /dev/stdout), which is left as it is"
        raise WriteError(errno.EEXIST, said)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    kind = {
        Kind.FOLDER: "a folder",
        Kind.SPECIAL: "not a regular file (a device, FIFO or socket)",
        Kind.BROKEN_LINK: "a loop of symbolic links",  # realpath stops where a loop begins
    }.get(look_at(target).kind)
    if kind is not None:  # a file, a missing one, or one that cannot be looked at: the write says why
        raise WriteError(errno.EEXIST, f"cannot write {path}: it is {kind}, which is left as it is")
    return target


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A fresh temporary path in `path`'s folder; fsynced and renamed onto `path` if the block completes.

    The folder is created if needed. On any exception (KeyboardInterrupt included) the temporary
    file is removed and `path` is left as it was. A `path` that is a folder, a device or a FIFO is
    refused (`file_target`). A symbolic link is replaced, never written through: behind one may sit
    a DVC cache file that other commits share; callers that mean to follow a link (a table the
    user named) pass `file_target(path)`.
    """
    if not path.is_symlink():
        file_target(path)  # a folder, device or FIFO is refused, not replaced
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_file(path.parent, temp_prefix(path.name))
    except OSError as err:  # a read-only folder, a file where the folder should be
        raise write_error(path, err) from err
    try:
        yield tmp
        if tmp.exists():
            fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except WriteError:
        raise
    except OSError as err:
        if err.filename is not None and Path(os.fsdecode(err.filename)) not in (tmp, path, path.parent):
            raise  # another file's error inside the block (a link of --sort-into): not this file's
        raise write_error(path, err) from err
    finally:
        tmp.unlink(missing_ok=True)


def write_error(path: Path, err: OSError) -> WriteError:
    """The WriteError of `path` for `err`, saying whether a previous file is kept."""
    kept = f"the previous {path.name} is kept" if path.exists() else f"no {path.name} was written"
    return WriteError(err.errno, f"cannot write {path}: {err.strerror or err}; {kept}")


def temp_prefix(name: str) -> str:
    """`.<name>-`, shortened so that a temporary name (the prefix, a pid and 12 hex digits) stays
    within the 255 bytes a file name may have: a legal long name must not fail on its temporary."""
    prefix = f".{name}"
    while len(os.fsencode(prefix)) > NAME_LIMIT - 21:  # "-" + up to 7-digit pid + "-" + 12 hex
        prefix = prefix[:-1]
    return f"{prefix}-"


def write_text_atomic(path: Path, text: str, newline: str | None = None, keep_mode: bool = False) -> None:
    """Write `text` to `path` atomically, as UTF-8 whatever the locale's encoding; `newline` as
    for `open` (None: the platform's line ending). `keep_mode`: a file rewritten in place keeps its
    permissions (a group-writable params.yaml stays so), as an editor keeps them."""
    mode = stat.S_IMODE(path.stat().st_mode) if keep_mode and path.is_file() else None
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline=newline)
        if mode is not None:
            os.chmod(tmp, mode)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as indented JSON (with a final newline) to `path` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")

"""`gat predict --sort-into DIR`: each clustered input linked (or copied) into DIR/<cluster name>/.

Nothing already in DIR is ever overwritten or removed: a name that is taken gets a number
(`photo (2).jpg`), and links are created with O_EXCL semantics (`os.symlink` and exclusive-create
copies fail instead of replacing), so two runs racing into one folder cannot clobber each other
either. Sorting the same inputs into the same folder again adds nothing: an existing link to the
same file, or (with --copy) a file of the same size and content (SHA-256), counts as already sorted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from gatcluster.data.walk import mark_output_folder

MAX_NAME_BYTES = 200  # well under the usual 255-byte file name limit, with room for " (123)"
HASH_BLOCK = 1 << 20  # files are hashed in blocks: memory stays flat for any size


def folder_name(name: str, cluster: int) -> str:
    """A cluster name made safe as one folder name (unicode kept; separators, controls and dots out)."""
    cleaned = "".join(
        "_" if ch in '/\\:*?"<>|' or unicodedata.category(ch).startswith("C") else ch
        for ch in unicodedata.normalize("NFC", name)
    ).strip(" .")
    while len(cleaned.encode()) > MAX_NAME_BYTES:
        cleaned = cleaned[:-1]
    return cleaned or f"cluster {cluster}"


def cluster_folders(names: list[str]) -> list[str]:
    """One distinct folder name per cluster; clusters whose names clash get their id appended."""
    safe = [folder_name(n, k) for k, n in enumerate(names)]
    clashing = {s.casefold() for s in safe if sum(t.casefold() == s.casefold() for t in safe) > 1}
    return [f"{s} ({k})" if s.casefold() in clashing else s for k, s in enumerate(safe)]


def numbered(name: str, n: int) -> str:
    """`photo.jpg` -> `photo (n).jpg` (the suffix stays last, so the file still opens)."""
    path = Path(name)
    return f"{path.stem} ({n}){path.suffix}"


@dataclass
class Placed:
    """Where one input went: its new path, whether it had to be renamed, or that it was there already."""

    path: Path
    renamed: bool = False
    already_there: bool = False


class ClusterSorter:
    """Puts inputs into DIR/<cluster folder>/, as symbolic links or (copy=True) as copies."""

    def __init__(self, root: Path, names: list[str], copy: bool, mark_folders: bool = False) -> None:
        self.root = root
        self.folders = cluster_folders(names)
        self.copy = copy
        # Cluster folders made among the inputs (`photos --sort-into photos`) carry the output
        # marker, so later walks of the inputs leave these links out (`data.walk`).
        self.mark_folders = mark_folders

    def place(self, source: Path, cluster: int) -> Placed:
        """Link or copy `source` into its cluster's folder under a free name; OSError if impossible."""
        folder = self.root / self.folders[cluster]
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            if self.mark_folders:
                mark_output_folder(folder)
        source = source.resolve()
        self._source_digest = None  # hashed once, and only if a same-size copy is found
        n = 1
        while True:
            target = folder / (source.name if n == 1 else numbered(source.name, n))
            if self.is_same(target, source):
                return Placed(target, already_there=True)
            try:
                self.create(target, source)
                return Placed(target, renamed=n > 1)
            except FileExistsError:
                n += 1

    def is_same(self, target: Path, source: Path) -> bool:
        """Whether `target` already is this input: its link, or (copying) a copy of the same content."""
        if not self.copy:
            return target.is_symlink() and Path(os.readlink(target)) == source
        if target.is_symlink() or not target.is_file() or target.stat().st_size != source.stat().st_size:
            return False
        if self._source_digest is None:
            self._source_digest = file_digest(source)
        return file_digest(target) == self._source_digest

    def create(self, target: Path, source: Path) -> None:
        """A new link or copy at `target`; FileExistsError if the name is taken (nothing replaced)."""
        if not self.copy:
            os.symlink(source, target)
            return
        with open(source, "rb") as src, open(target, "xb") as dst:
            try:
                shutil.copyfileobj(src, dst)
            except BaseException:
                dst.close()
                target.unlink(missing_ok=True)  # no half-copied file left behind
                raise
        shutil.copystat(source, target)


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()

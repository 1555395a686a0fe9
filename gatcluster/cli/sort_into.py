"""`gat predict --sort-into DIR`: each clustered input linked (or copied) into DIR/<cluster name>/.

Nothing already in DIR is ever overwritten or removed: a name that is taken gets a number
(`photo (2).jpg`), and links are created with O_EXCL semantics (`os.symlink` and exclusive-create
copies fail instead of replacing), so two runs racing into one folder cannot clobber each other
either. Sorting the same inputs into the same folder again adds nothing: an existing link to the
same file (whatever its name), or (with --copy) a file of the same size and content (SHA-256),
counts as already sorted. An input that an earlier run put into another cluster folder (another
model sorted it otherwise) is sorted all the same and counted, so that the summary can say the
folder now holds it twice. What cannot be read there (another user's folder) counts as not there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from gatcluster.atomic import NAME_LIMIT
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
    """`photo.jpg` -> `photo (n).jpg` (the suffix stays last, so the file still opens); the stem
    (down to one character), then the suffix, is shortened where the number would take the name
    past NAME_LIMIT bytes."""
    path = Path(name)
    stem, suffix = path.stem, path.suffix
    while len(stem) > 1 and len(os.fsencode(f"{stem} ({n}){suffix}")) > NAME_LIMIT:
        stem = stem[:-1]
    while suffix and len(os.fsencode(f"{stem} ({n}){suffix}")) > NAME_LIMIT:
        suffix = suffix[:-1]
    return f"{stem} ({n}){suffix}"


@dataclass
class Placed:
    """Where one input went: its new path, whether it had to be renamed, or that it was there already."""

    path: Path
    renamed: bool = False
    already_there: bool = False
    elsewhere: bool = False  # an earlier run put it into another cluster folder too


class ClusterSorter:
    """Puts inputs into DIR/<cluster folder>/, as symbolic links or (copy=True) as copies."""

    def __init__(self, root: Path, names: list[str], copy: bool, mark_folders: bool = False) -> None:
        self.root = root
        self.folders = cluster_folders(names)
        self.copy = copy
        # Cluster folders made among the inputs (`photos --sort-into photos`) carry the output
        # marker, so later walks of the inputs leave these links out (`data.walk`).
        self.mark_folders = mark_folders
        self.earlier: dict[Path | int, list[tuple[int, Path]]] | None = None
        self.digests: dict[Path, str | None] = {}  # earlier copies, each hashed at most once
        self._source_digest: str | None = None

    def earlier_entries(self) -> dict[Path | int, list[tuple[int, Path]]]:
        """What the cluster folders held before this run, read once on first use: each link by the
        file it points to, each other file by its size (a copy is confirmed by its content)."""
        if self.earlier is None:
            self.earlier = {}
            for cluster, name in enumerate(self.folders):
                for entry in readable_entries(self.root / name):
                    try:
                        if entry.is_symlink():
                            key: Path | int = Path(os.path.realpath(entry))
                        elif self.copy and entry.is_file():
                            key = entry.stat().st_size
                        else:
                            continue
                    except OSError:
                        continue
                    self.earlier.setdefault(key, []).append((cluster, entry))
        return self.earlier

    def earlier_places(self, source: Path) -> list[tuple[int, Path]]:
        """(cluster, entry) of each link to `source` (resolved) an earlier run made, and with --copy
        of each copy of it (same size, then same SHA-256)."""
        earlier = self.earlier_entries()
        places = list(earlier.get(source, []))
        if self.copy:
            try:
                candidates = earlier.get(source.stat().st_size, [])
                if candidates:
                    digest = self.source_digest(source)
                    places += [(k, e) for k, e in candidates if self.earlier_digest(e) == digest]
            except OSError:  # the input itself cannot be read: placing it will say so
                pass
        return places

    def earlier_digest(self, entry: Path) -> str | None:
        """SHA-256 of an earlier copy, computed once (None where it cannot be read)."""
        if entry not in self.digests:
            try:
                self.digests[entry] = file_digest(entry)
            except OSError:
                self.digests[entry] = None
        return self.digests[entry]

    def source_digest(self, source: Path) -> str:
        """SHA-256 of the input being placed, computed at most once per input."""
        if self._source_digest is None:
            self._source_digest = file_digest(source)
        return self._source_digest

    def place(self, source: Path, cluster: int) -> Placed:
        """Link or copy `source` into its cluster's folder under a free name; OSError if impossible."""
        folder = self.root / self.folders[cluster]
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            if self.mark_folders:
                mark_output_folder(folder)
        # Named as the input is (a photo library's hash-named files are reached through links named
        # for people), pointing at the file itself.
        name, source = source.name, source.resolve()
        self._source_digest = None  # hashed once, and only if a same-size copy is found
        earlier = self.earlier_places(source)
        elsewhere = any(k != cluster for k, _ in earlier)
        # With --copy only a copy counts as there: a link of an earlier run is no copy to keep.
        here = [entry for k, entry in earlier if k == cluster and not (self.copy and entry.is_symlink())]
        if here:  # under its own name or another (an older version named links after their file)
            return Placed(here[0], already_there=True, elsewhere=elsewhere)
        n = 1
        while True:
            target = folder / (name if n == 1 else numbered(name, n))
            if self.is_same(target, source):
                return Placed(target, already_there=True, elsewhere=elsewhere)
            try:
                self.create(target, source)
                return Placed(target, renamed=n > 1, elsewhere=elsewhere)
            except FileExistsError:
                n += 1

    def is_same(self, target: Path, source: Path) -> bool:
        """Whether `target` already is this input: its link, or (copying) a copy of the same content."""
        if not self.copy:
            return target.is_symlink() and Path(os.readlink(target)) == source
        if target.is_symlink() or not target.is_file() or target.stat().st_size != source.stat().st_size:
            return False
        return file_digest(target) == self.source_digest(source)

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


def readable_entries(folder: Path) -> list[Path]:
    """The entries of `folder`, sorted; none where it is missing or cannot be listed."""
    try:
        return sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return []


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()

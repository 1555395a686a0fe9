"""Build `ImageDataset`s from external sources: torchvision downloads, ImageNet trees, image folders.

Downloads go through torchvision's `download_url`, which checks each archive's md5 sum. The
official URLs and md5 sums come from torchvision's own dataset classes; a `Mirror` replaces both
(a local server in the tests, a company mirror). The extracted files are read by `formats`, not by
torchvision's dataset classes, so an already-extracted offline copy in torchvision's layout works
without network and CIFAR-100's coarse labels are available.

Image trees (ImageNet subsets, `folder`) decode and fit every file in colour with
`fit.decode_fitted` (FIT_RULE; a grayscale model converts after the colour jitter, as the authors'
pipeline does), as `gat predict` does, and skip unreadable files with a reason instead of failing.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gatcluster.atomic import fsync_path, fsync_tree, make_temp_dir
from gatcluster.data import formats
from gatcluster.data.bundled import BUNDLED_SOURCES
from gatcluster.data.fit import DECODE_CHANNELS, FIT_RULE, decode_fitted
from gatcluster.data.parallel import decode_workers, ordered_map
from gatcluster.data.store import DatasetError, ImageDataset, release_pages, rows_per_block
from gatcluster.data.walk import SkippedFile, files_in, is_output_folder, walk_files
from gatcluster.path_text import path_text, shown_path

IMAGENET_WNIDS = {  # docs/method.md §9; the position in the tuple is the class index
    "imagenet10": (
        *("n02056570", "n02085936", "n02128757", "n02690373", "n02692877"),
        *("n03095699", "n04254680", "n04285008", "n04467665", "n07747607"),
    ),
    "imagenet-dogs15": (
        *("n02085936", "n02086646", "n02088238", "n02091467", "n02097130"),
        *("n02099601", "n02101388", "n02101556", "n02102177", "n02105056"),
        *("n02105412", "n02105855", "n02107142", "n02110958", "n02112137"),
    ),
}
ROOT_SOURCES = (*IMAGENET_WNIDS, "folder")


@dataclass(frozen=True)
class Mirror:
    """Where a source's archives come from: URL = base_url + file name; md5s: file name -> md5.

    `file_md5s` are the published md5 sums of the extracted files that are Python pickles (CIFAR):
    every such file is checked before it is unpickled, since unpickling can run code.
    """

    base_url: str
    md5s: dict[str, str]
    file_md5s: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """torchvision's layout of a source under its root, and the reader of the extracted files."""

    archive_dir: str  # where torchvision downloads the archives, relative to root
    folder: str  # where the extracted files are, relative to root
    files: tuple[str, ...]
    read: Callable[[Path], ImageDataset]
    pickled: bool = False  # the files are Python pickles: checked against file_md5s before reading


LAYOUTS = {
    "mnist": Layout("MNIST/raw", "MNIST/raw", formats.MNIST_FILES, formats.read_mnist),
    "fashion-mnist": Layout(
        "FashionMNIST/raw", "FashionMNIST/raw", formats.MNIST_FILES, formats.read_fashion_mnist
    ),
    "cifar10": Layout(".", "cifar-10-batches-py", formats.CIFAR10_FILES, formats.read_cifar10, True),
    "cifar100-20": Layout(".", "cifar-100-python", formats.CIFAR100_FILES, formats.read_cifar100_20, True),
    "stl10": Layout(".", "stl10_binary", formats.STL10_FILES, formats.read_stl10),
}


def load_source(
    source: str,
    root: Path | None,
    image_size: int,
    cache_dir: Path,
    mirror: Mirror | None = None,
    on_file: Callable[[], None] | None = None,
) -> tuple[ImageDataset, list[SkippedFile]]:
    """Any source of config.SOURCES, with the files an image tree skipped; `on_file` is called
    after each file of an image tree (decoded or skipped), for a progress display.

    Download sources read `root` (an offline copy) when given, else download into `cache_dir`.
    Image trees need `root` and come fitted to image_size × image_size, in colour; the other sources
    come as they are published (`store.fit_dataset` fits them by their rule).
    """
    if source in BUNDLED_SOURCES:
        return BUNDLED_SOURCES[source](), []
    if source in LAYOUTS:
        return load_torchvision_source(source, root or cache_dir, download=True, mirror=mirror), []
    if source not in ROOT_SOURCES:
        raise DatasetError(f"unknown data source {source!r}")
    if root is None or not root.is_dir():
        raise DatasetError(f"source {source} needs data.root to name an existing folder, got {root}")
    if source == "folder":
        return load_folder(root, image_size, cache_dir, on_file)
    return load_imagenet_subset(source, root, image_size, cache_dir, on_file)


def official_mirror(name: str) -> Mirror:
    """torchvision's own download URL and archive md5 sums for a download source."""
    from torchvision import datasets  # late: only download sources need torchvision's dataset classes

    if name in ("mnist", "fashion-mnist"):
        cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
        return Mirror(cls.mirrors[0], dict(cls.resources))
    cls = {"cifar10": datasets.CIFAR10, "cifar100-20": datasets.CIFAR100, "stl10": datasets.STL10}[name]
    files = dict(cls.train_list + cls.test_list) if name != "stl10" else {}
    if name != "stl10":
        files[cls.meta["filename"]] = cls.meta["md5"]
    return Mirror(cls.url.rsplit("/", 1)[0] + "/", {cls.filename: cls.tgz_md5}, files)


def load_torchvision_source(
    name: str, root: Path, download: bool = True, mirror: Mirror | None = None
) -> ImageDataset:
    """A download source (train + test) from `root` in torchvision's layout, fetched there if absent.

    Archives already under root are used when their md5 matches; otherwise they are downloaded
    from `mirror` (default: torchvision's official one) when `download`, else DatasetError.
    """
    layout = LAYOUTS[name]
    folder = root / layout.folder
    mirror = mirror or official_mirror(name)
    missing = [file for file in layout.files if not (folder / file).is_file()]
    if missing:
        try:
            _fetch_archives(name, root, layout, mirror, download)
        except DatasetError as err:
            if len(missing) == len(layout.files):
                raise
            # A copy with some files: what it lacks is the news, not only the archive that failed.
            raise DatasetError(f"{folder} lacks {', '.join(missing)} of the {name} copy; {err}") from err
    if layout.pickled:
        check_pickles(name, folder, layout.files, mirror.file_md5s)
    try:
        return layout.read(folder)
    except (OSError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as err:
        raise DatasetError(
            f"{folder} holds a damaged {name} copy ({err}): replace it with an intact one, or delete it"
            " and fetch again"
        ) from err


def check_pickles(name: str, folder: Path, files: tuple[str, ...], md5s: dict[str, str]) -> None:
    """DatasetError naming the first file that is not the published one: never unpickle it."""
    for file in files:
        path = folder / file
        if file not in md5s or not _md5_matches(path, md5s[file]):
            raise DatasetError(
                f"{path} is not the published {name} file (md5 differs): a pickle can run code, so it is "
                "not read; delete the folder and fetch again, or put the official archive in data.root"
            )


def load_imagenet_subset(
    name: str,
    root: Path,
    size: int,
    scratch_dir: Path | None = None,
    on_file: Callable[[], None] | None = None,
) -> tuple[ImageDataset, list[SkippedFile]]:
    """ImageNet-10 / ImageNet-Dogs-15 from an ImageNet train tree root/<wnid>/*.JPEG.

    Class index = position of the wnid in docs/method.md §9's list; images fitted to size × size
    into a disk-backed array in `scratch_dir` (see `_decode_all`).
    """
    wnids = IMAGENET_WNIDS[name]
    missing = missing_class_folders(name, root)
    if missing:
        raise DatasetError(f"{root} lacks the {name} class folder(s) {', '.join(missing)}")
    walk_skips: list[SkippedFile] = []

    def labelled_files() -> Iterator[tuple[Path, int]]:
        for label, wnid in enumerate(wnids):
            for item in files_in(root / wnid):  # a FIFO or broken link is skipped as such
                if isinstance(item, SkippedFile):
                    walk_skips.append(item)
                else:
                    yield item, label

    images, labels, skipped = _decode_all(labelled_files(), size, scratch_dir, on_file)
    skipped = walk_skips + skipped
    found = set(labels.tolist())
    empty = [wnid for label, wnid in enumerate(wnids) if label not in found]
    if empty:
        # A class folder that could not be listed is the likely cause: say why (a permission).
        why = [f"{shown_path(s.path)}: {s.reason}" for s in walk_skips if s.path.parent == root]
        note = f" ({'; '.join(why)})" if why else ""
        raise DatasetError(f"no readable images for {name} class(es) {', '.join(empty)} under {root}{note}")
    return ImageDataset(images, labels, list(wnids), name, FIT_RULE), skipped


def missing_class_folders(name: str, root: Path) -> list[str]:
    """The wnids of ImageNet subset `name` that have no folder under `root` (an ImageNet train tree)."""
    return [wnid for wnid in IMAGENET_WNIDS[name] if not (root / wnid).is_dir()]


def load_folder(
    root: Path, size: int, scratch_dir: Path | None = None, on_file: Callable[[], None] | None = None
) -> tuple[ImageDataset, list[SkippedFile]]:
    """Every decodable image under `root` (recursive, hidden entries ignored), fitted to size × size
    into a disk-backed array in `scratch_dir` (see `_decode_all`).

    Labelled by first-level sub-folder (classes sorted) when every image sits in one; else unlabelled.
    A file's class is the folder where it lies (`folder_files`).
    """
    files, walk_skips = folder_files(root)
    folders: dict[str, int] = {}  # first-level sub-folder -> tag; files directly in root get -1

    def tagged_files() -> Iterator[tuple[Path, int]]:
        for item, parts in files:
            yield item, (folders.setdefault(parts[0], len(folders)) if len(parts) > 1 else -1)

    images, tags, skipped = _decode_all(tagged_files(), size, scratch_dir, on_file)
    skipped = walk_skips + skipped
    if not len(images):
        note = f" ({len(skipped)} skipped, e.g. {skipped[0].path}: {skipped[0].reason})" if skipped else ""
        raise DatasetError(f"no images found under {root}{note}")
    labels, classes = _folder_labels(tags, folders)
    return ImageDataset(images, labels, classes, "folder", FIT_RULE), skipped


def folder_files(root: Path) -> tuple[list[tuple[Path, tuple[str, ...]]], list[SkippedFile]]:
    """The files under `root` in walk order, each with the path below `root` that names its class,
    and what the walk skipped.

    A link from one class folder into another (`cats/see-also -> ../dogs/best`) must not relabel
    the images it reaches, nor a linked file count twice. A file is labelled by where it lies when
    its class folder is a real folder of the tree and it lies where the walk reads (inside the
    tree, no hidden name on the way, no `gat predict` output folder); else by the path walked: a
    library's `alice/beach.jpg -> ../.store/h1.jpg` is alice's, and class folders that are links
    (`cats -> raw/cats`) keep their names. A file reached twice is kept once, preferably where it
    lies, the other path skipped with the reason. Lists the tree, decodes nothing.
    """
    real_root = Path(os.path.realpath(root))
    readable: dict[Path, bool] = {}  # real folder -> whether the walk reads it (asked once each)
    real_folders: dict[Path, Path] = {}  # walked folder -> its real path (one realpath per folder)
    walked: list[tuple[Path, tuple[str, ...], Path, bool]] = []
    skipped: list[SkippedFile] = []
    for item in walk_files([root]):
        if isinstance(item, SkippedFile):
            skipped.append(item)
            continue
        if item.parent not in real_folders:
            real_folders[item.parent] = Path(os.path.realpath(item.parent))
        real = Path(os.path.realpath(item)) if item.is_symlink() else real_folders[item.parent] / item.name
        parts = item.relative_to(root).parts
        lies_here = real == real_root.joinpath(*parts)
        if not lies_here and lies_where_read(real, real_root, parts, root, readable):
            parts = real.relative_to(real_root).parts
        walked.append((item, parts, real, lies_here))
    kept: dict[Path, tuple[Path, bool]] = {}  # real file -> the path kept, and whether it lies there
    for item, _, real, lies_here in walked:
        if real not in kept or (lies_here and not kept[real][1]):
            kept[real] = (item, lies_here)
    files = []
    for item, parts, real, _ in walked:
        first = kept[real][0]
        if first == item:
            files.append((item, parts))
        else:
            skipped.append(SkippedFile(item, f"the same file as {shown_path(first.relative_to(root))}"))
    return files, skipped


def lies_where_read(
    real: Path, real_root: Path, walked_parts: tuple[str, ...], root: Path, known: dict[Path, bool]
) -> bool:
    """Whether a file reached through a link (`walked_parts` below `root`) really lies where it
    should be labelled: under a real (not linked) class folder, inside the tree, in a place the
    walk reads."""
    if len(walked_parts) > 1 and (root / walked_parts[0]).is_symlink():
        return False  # a class folder kept elsewhere (`cats -> raw/cats`): its name is the class
    return (
        real.is_relative_to(real_root)
        and not real.name.startswith(".")
        and walked_folder(real.parent, real_root, known)
    )


def walked_folder(folder: Path, real_root: Path, known: dict[Path, bool]) -> bool:
    """Whether the walk of `real_root` reads `folder` (a folder inside it): none of the folders down
    to it is hidden or a marked `gat predict` output folder. `known` caches the answers."""
    if folder == real_root:
        return True
    if folder not in known:
        hidden = folder.name.startswith(".") or is_output_folder(folder)
        known[folder] = not hidden and walked_folder(folder.parent, real_root, known)
    return known[folder]


def unfiled_images(root: Path, skipped: Iterable[SkippedFile]) -> list[Path]:
    """The images directly in `root` while its sub-folders hold images too: what left a `folder`
    source unlabelled (labels come from first-level sub-folders only when every image sits in one).
    Empty for a flat folder or one with no images at its top. Lists the tree again, decodes nothing."""
    left_out = {item.path for item in skipped}
    kept = [(f, parts) for f, parts in folder_files(root)[0] if f not in left_out]
    top = [f for f, parts in kept if len(parts) == 1]
    return top if len(top) < len(kept) else []


def _fetch_archives(name: str, root: Path, layout: Layout, mirror: Mirror, download: bool) -> None:
    """Verify (downloading when allowed) and extract every archive of `mirror` into torchvision's layout."""
    archive_dir = root / layout.archive_dir
    for filename, md5 in mirror.md5s.items():
        archive = archive_dir / filename
        if not _md5_matches(archive, md5):
            # A copy that is there but differs (cut off, another version) is named, not just "not found".
            found = (
                f"{archive} is there but is not the published file (md5 differs); "
                if archive.exists()
                else ""
            )
            if not download:
                raise DatasetError(
                    f"{found}{name} not found under {root} and downloads are off: {_how_to(root)}"
                )
            try:
                _download(name, root, mirror.base_url + filename, archive, md5)
            except DatasetError as err:
                raise DatasetError(f"{found}{err}") from err
        _extract(archive, archive_dir)
    missing = [file for file in layout.files if not (root / layout.folder / file).is_file()]
    if missing:
        raise DatasetError(f"the {name} archives lack {', '.join(missing)} under {root / layout.folder}")


def _how_to(root: Path) -> str:
    """What to do when a download source cannot be fetched."""
    where = f"put a torchvision-layout copy under {root} (or elsewhere, and set data.root)"
    return f"{where}, or check the network"


def _md5_matches(path: Path, md5: str) -> bool:
    from torchvision.datasets.utils import check_integrity

    return check_integrity(str(path), md5)


def _download(name: str, root: Path, url: str, archive: Path, md5: str) -> None:
    """torchvision's download_url (md5 verified); failures become one DatasetError saying what to do."""
    from torchvision.datasets.utils import download_url

    try:
        download_url(url, str(archive.parent), archive.name, md5)
    except urllib.error.URLError as err:
        _remove_empty_folders(archive.parent, root)
        raise DatasetError(f"could not download {name} from {url} ({err.reason}); {_how_to(root)}") from err
    except RuntimeError as err:  # download_url's md5 mismatch: drop the bad file, never extract it
        archive.unlink(missing_ok=True)
        _remove_empty_folders(archive.parent, root)
        raise DatasetError(f"could not download {name}: {url} failed its md5 check; {_how_to(root)}") from err
    except OSError as err:
        _remove_empty_folders(archive.parent, root)
        raise DatasetError(f"could not download {name} from {url} ({err}); {_how_to(root)}") from err


def _remove_empty_folders(folder: Path, root: Path) -> None:
    """Remove `folder` and its parents up to `root` (kept) while they are empty: the folders a failed
    download made, which would otherwise look like a partial copy."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()  # only an empty folder goes
        except OSError:
            return
        folder = folder.parent


def _extract(archive: Path, dest: Path) -> None:
    """Unpack a .tar.gz (or gunzip a .gz) into `dest` via a temporary folder moved into place,
    so an interrupted extraction never leaves files that look complete."""
    tmp = make_temp_dir(dest, ".extract-")
    try:
        if archive.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        else:
            with gzip.open(archive) as src:
                (tmp / archive.name.removesuffix(".gz")).write_bytes(src.read())
        fsync_tree(tmp)
        for item in tmp.iterdir():
            if (dest / item.name).is_dir():
                shutil.rmtree(dest / item.name)
            item.replace(dest / item.name)
        fsync_path(dest)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DatasetError(f"could not extract {archive} ({err}); delete it and fetch again") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class ScratchRows:
    """A disk-backed uint8 array of rows that grows as rows are appended (image trees at fetch).

    The rows live in a memory-mapped scratch file in `scratch_dir` (the system's temp folder when
    None), unlinked from the start so nothing is left behind. Written pages are flushed and
    released every block of rows (`store.BLOCK_BYTES`), so filling it holds about one block in
    memory, whatever the number of rows; the file is sparse, so growing by doubling costs no disk.
    """

    def __init__(self, row_shape: tuple[int, ...], scratch_dir: Path | None) -> None:
        if scratch_dir is not None:
            scratch_dir.mkdir(parents=True, exist_ok=True)
        self.file = tempfile.TemporaryFile(dir=scratch_dir)  # noqa: SIM115 (closed by finish)
        self.row_shape = row_shape
        self.count = 0
        self.array: np.memmap | None = None
        self.block = rows_per_block(np.empty((0, *row_shape), dtype=np.uint8))

    def append(self, row: np.ndarray) -> None:
        """Add one row at the end."""
        if self.array is None or self.count == len(self.array):
            self._grow()
        self.array[self.count] = row
        self.count += 1
        if self.count % self.block == 0:
            self._release()

    def finish(self) -> np.ndarray:
        """The rows so far, as a read-only view of the scratch file."""
        self.file.close()  # the mapping keeps the unlinked file alive
        if self.array is None:
            return np.empty((0, *self.row_shape), dtype=np.uint8)
        self._release()
        return self.array[: self.count]

    def _grow(self) -> None:
        capacity = self.block if self.array is None else 2 * len(self.array)
        if self.array is not None:
            self._release()
        self.file.truncate(capacity * int(np.prod(self.row_shape)))
        self.array = np.memmap(self.file, dtype=np.uint8, mode="r+", shape=(capacity, *self.row_shape))

    def _release(self) -> None:
        self.array.flush()
        release_pages(self.array)


def _decode_all(
    files: Iterable[tuple[Path, int]],
    size: int,
    scratch_dir: Path | None,
    on_file: Callable[[], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[SkippedFile]]:
    """Decode and fit each file into `ScratchRows`: (N, size, size, 3) images, the tags of the kept
    files, and the files skipped with their reasons. `files` is consumed lazily, decoded on a few
    threads (`parallel.ordered_map`) and stored in their order."""
    rows = ScratchRows((size, size, DECODE_CHANNELS), scratch_dir)  # colour: hue jitter needs it
    tags = array("q")
    skipped: list[SkippedFile] = []
    decoded = ordered_map(
        lambda item: (item[1], decode_fitted(item[0], size, FIT_RULE)), files, decode_workers()
    )
    with closing(decoded):  # an error here (a full disk) stops the decoding threads at once
        for tag, fitted in decoded:
            if on_file is not None:
                on_file()
            if isinstance(fitted, SkippedFile):
                skipped.append(fitted)
                continue
            rows.append(fitted)
            tags.append(tag)
    return rows.finish(), np.frombuffer(tags, dtype=np.int64).copy(), skipped


def _folder_labels(tags: np.ndarray, folders: dict[str, int]) -> tuple[np.ndarray | None, list[str]]:
    """Labels from first-level sub-folder names (classes sorted), or (None, []) when any kept image
    sits directly in root (tag -1)."""
    if (tags < 0).any():
        return None, []
    names = {tag: path_text(name) for name, tag in folders.items()}  # class names: valid UTF-8
    classes = sorted({names[int(tag)] for tag in np.unique(tags)})
    index = np.full(len(folders), -1, dtype=np.int64)
    for tag, name in names.items():
        if name in classes:
            index[tag] = classes.index(name)
    return index[tags], classes

"""Params checked against the data before any stage deletes an output (the `check` stage, `gat check`).

`dvc repro` deletes a stage's outputs before running it, so a setting that cannot work must stop
the pipeline in its first stage, not in `train` after the previous model and curves are gone.
The schema (keys, types, ranges) is `config.py`'s; this module adds what depends on the data:
enough images for the sub-batch and for K clusters.
"""

from __future__ import annotations

import json
from pathlib import Path

from gatcluster.config.params import NO_CUDA_MESSAGE, DataConfig, Params, ParamsError
from gatcluster.data.bundled import BUNDLED_SOURCES
from gatcluster.data.images import IMAGE_SUFFIXES, is_image_file
from gatcluster.data.sources import IMAGENET_WNIDS, ROOT_SOURCES, folder_files, missing_class_folders
from gatcluster.data.store import MANIFEST
from gatcluster.path_kind import Kind, look_at, missing_reason
from gatcluster.path_text import shown_path

# Images per source as fetched (train+test where the paper uses both; docs/method.md §6, §9).
KNOWN_SIZES = {
    "mnist5k": 5000,
    "digits": 1797,
    "mnist": 70000,
    "fashion-mnist": 70000,
    "cifar10": 60000,
    "cifar100-20": 60000,
    "stl10": 13000,
    "imagenet10": 13000,
    "imagenet-dogs15": 19500,
}


class PreflightError(ParamsError):
    """The params cannot work with this data; the message says what to change."""


def resolve_data_root(data: DataConfig, project_root: Path) -> Path | None:
    """data.root as a path (relative ones against the project root); an error when required but unusable."""
    if data.root is None:
        if data.source in ROOT_SOURCES:
            raise PreflightError(f"data.source {data.source} needs data.root: the folder holding its images")
        return None
    if not data.root.strip():  # Path("") is the current folder: the project itself
        raise PreflightError("data.root is empty: give the folder, or null where the source needs none")
    try:
        root = Path(data.root).expanduser()
    except RuntimeError as err:  # ~name of a user this machine does not have
        home = data.root.split("/")[0]
        raise PreflightError(
            f"data.root {data.root}: no home folder is known for {home}: give the full path"
        ) from err
    root = root if root.is_absolute() else project_root / root
    problem = folder_problem(root)
    if data.source in ROOT_SOURCES and problem:
        raise PreflightError(
            f"data.root {shown_path(root)} {problem} (data.source {data.source} reads images there)"
        )
    if data.source not in BUNDLED_SOURCES and problem:  # an offline copy that is not there
        raise PreflightError(
            f"data.root {shown_path(root)} {problem} (data.source {data.source} reads its offline copy"
            " there): fix the path, or set data.root: null to download it"
        )
    return root


def check_class_folders(source: str, root: Path | None) -> None:
    """PreflightError when an ImageNet subset's train tree lacks some of its class folders: fetch
    would stop on it only after `dvc repro` had set the previous data set aside (asked even when
    a data set is fetched: a changed data.root makes DVC fetch again)."""
    if source not in IMAGENET_WNIDS or root is None:
        return
    missing = missing_class_folders(source, root)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise PreflightError(
            f"data.root {shown_path(root)} lacks the {source} class folder(s) {shown}: point it at an"
            " ImageNet train tree (<root>/<wnid>/*.JPEG)"
        )


def folder_problem(path: Path) -> str | None:
    """Why `path` is not a folder ("does not exist", "is not a folder", ...), or None when it is one."""
    looked = look_at(path)
    problems = {
        Kind.FOLDER: None,
        Kind.MISSING: "does not exist" + missing_reason(path),
        Kind.BROKEN_LINK: "is a broken symlink",
        Kind.FILE: "is not a folder",
        Kind.SPECIAL: "is not a folder",
    }
    return problems.get(looked.kind, f"cannot be looked up ({looked.reason})")


def check_training_device(device: str) -> None:
    """PreflightError when train.device is cuda and no GPU is usable here: the train stage would
    stop on it only after `dvc repro` had removed its previous outputs."""
    if device != "cuda":
        return
    import torch  # late: it takes seconds to import, and only this setting needs it here

    if not torch.cuda.is_available():
        raise PreflightError(NO_CUDA_MESSAGE)


def fetched_count(params: Params, dataset_dir: Path) -> int | None:
    """Images in the fetched data set when it is of the configured source, else None."""
    manifest = dataset_dir / MANIFEST
    if not manifest.is_file():
        return None
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
        same = (
            info.get("source") == params.data.source
            and info.get("image_shape", [])[:2] == [params.model.input_size] * 2  # [H, W, C]
        )
        return int(info["count"]) if same and params.data.source != "folder" else None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):  # damaged: as if not fetched
        return None  # (fetch writes it again; the train stage says so if it is run first)


def folder_file_count(root: Path) -> int:
    """Images under an image folder: files named like images, and others whose content is one (an
    upper bound: corrupt images drop at fetch). Counting every file called a folder of text files
    valid here and failed in fetch, after `dvc repro` had set the previous data set aside; so did
    counting empty files (cloud placeholders, a copy cut short), which fetch skips, and a file
    reached twice (through a link), which fetch reads once."""
    files = [item for item, _ in folder_files(root)[0]]
    return sum(1 for f in files if not_empty(f) and (f.suffix.lower() in IMAGE_SUFFIXES or is_image_file(f)))


def unreadable_note(root: Path) -> str:
    """The note `(unreadable folder: <why>)` where `root` itself cannot be listed, else nothing:
    "has 0 images" alone sent a user to look for images that are there."""
    try:
        first = next(root.iterdir(), None)
        if first is not None:
            first.lstat()  # a folder of mode r-- lists its names but lets none be looked at
    except OSError as err:
        return f" (unreadable folder: {err.strerror})"
    return ""


def not_empty(path: Path) -> bool:
    """Whether `path` holds any bytes (False where it cannot be looked at: fetch skips it too)."""
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def expected_count(params: Params, dataset_dir: Path, data_root: Path | None) -> tuple[int | None, str]:
    """How many images training will see, and where that number comes from (None: unknown yet)."""
    count = fetched_count(params, dataset_dir)
    if count is not None:
        return count, f"the fetched {params.data.source} data"
    if params.data.source == "folder" and data_root is not None:
        return folder_file_count(data_root), f"the image folder {data_root}{unreadable_note(data_root)}"
    return KNOWN_SIZES.get(params.data.source), f"the size of {params.data.source}"


def check_data_size(params: Params, count: int, where: str) -> None:
    """PreflightError when `count` images cannot fill a sub-batch, give K clusters, or split evenly
    over the training processes."""
    t, k = params.train, params.model.num_clusters
    if count < t.sub_batch:
        raise PreflightError(
            f"{where} has {count} images, fewer than train.sub_batch ({t.sub_batch}): "
            "lower train.sub_batch or add images"
        )
    # Each large batch (all the images, when fewer) is clustered into K groups, and into
    # experimental.overcluster groups: params.yaml demands fewer groups than train.large_batch.
    for key, clusters in (
        ("model.num_clusters", k),
        ("experimental.overcluster", params.experimental.overcluster),
    ):
        if count <= clusters:
            raise PreflightError(
                f"{where} has {count} images, not more than {key} ({clusters}): lower {key} or add images"
            )
    if t.processes > 1 and count < t.large_batch and count % t.processes:
        fits = count - count % t.processes
        raise PreflightError(
            f"{where} has {count} images, fewer than train.large_batch ({t.large_batch}), so each large "
            f"batch is all {count}, which do not split evenly over train.processes ({t.processes}): "
            f"set train.large_batch to {fits} (a multiple of {t.processes}) or train.processes to 1"
        )

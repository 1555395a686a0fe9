"""The `fetch` stage: load `data.source`, fit it to the model input once, store it at data/dataset/.

Download sources are cached under data/raw/ (git-ignored) unless data.root names an offline copy;
image trees (imagenet10, imagenet-dogs15, folder) are read from data.root. Images are fitted to
the backbone's input size (`model.input_size`) here by the source's rule (`data/fit.py`) and
stored in colour where the source has colour; later stages never resize. The data size is
checked before anything is written.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

from gatcluster.config.params import Params
from gatcluster.data.sources import ROOT_SOURCES, load_source, unfiled_images
from gatcluster.data.store import SKIPPED_FILE, ImageDataset, fit_dataset, write_dataset
from gatcluster.data.walk import SkippedFile, left_out_note, listed, output_folders_below
from gatcluster.path_text import shown_path
from gatcluster.pipeline.layout import ProjectLayout
from gatcluster.pipeline.preflight import PreflightError, check_data_size, resolve_data_root
from gatcluster.pipeline.progress import file_counter

SHOWN_SKIPS = 5

log = logging.getLogger("fetch")


def report_skipped(skipped: list[SkippedFile], layout: ProjectLayout, written: bool = True) -> None:
    """Warn about files left out of an image tree: the count, the first few with reasons, and where
    the whole list goes (`write_dataset` writes it beside the data set; not `written` when the fetch
    stops before writing: then no list is named)."""
    if not skipped:
        return
    log.warning("skipped %d unreadable or non-image files:", len(skipped))
    for item in skipped[:SHOWN_SKIPS]:
        log.warning("  %s: %s", shown_path(layout.relative(item.path)), item.reason)
    if len(skipped) > SHOWN_SKIPS:
        listed = layout.relative(layout.dataset_dir / SKIPPED_FILE)
        where = f" (all listed in {listed})" if written else ""
        log.warning("  ... and %d more%s", len(skipped) - SHOWN_SKIPS, where)


def report_unfiled(
    dataset: ImageDataset, root: Path, skipped: list[SkippedFile], layout: ProjectLayout
) -> None:
    """Warn when images directly in a folder source's root left its class sub-folders unlabelled,
    naming the first few: one stray file should not silently cost the evaluation its labels."""
    if dataset.source != "folder" or dataset.has_labels:
        return
    unfiled = unfiled_images(root, skipped)
    if not unfiled:
        return
    log.warning(
        "unlabelled: %s directly in %s, outside its sub-folders (%s); labels come from sub-folder"
        " names only when every image sits in one",
        "1 image lies" if len(unfiled) == 1 else f"{len(unfiled)} images lie",
        shown_path(layout.relative(root)),
        listed([shown_path(f.name) for f in unfiled], SHOWN_SKIPS),
    )


def report_predict_outputs(root: Path, layout: ProjectLayout) -> None:
    """Name the `gat predict` output folders a folder source left out: they may hold copies a user
    now means as training images (`--copy`), and skipping them silently would lose those."""
    folders = [shown_path(layout.relative(f)) for f in output_folders_below(root)]
    if folders:
        log.warning("%s", left_out_note(folders, SHOWN_SKIPS, "train on its images"))


def run_fetch(params: Params, layout: ProjectLayout) -> str:
    """Fetch the configured source, fit it, write it to data/dataset/; the one-line report."""
    data = params.data
    root = resolve_data_root(data, layout.root)
    # Image files take a while to decode: a line on stderr counts them as they go.
    counter = file_counter(f"fetch {data.source}") if data.source in ROOT_SOURCES else nullcontext()
    with counter as counted:
        dataset, skipped = load_source(
            data.source, root, params.model.input_size, layout.raw_cache, on_file=counted
        )
    too_few = None
    try:
        check_data_size(params, len(dataset.images), f"data.source {data.source}")  # before writing
    except PreflightError as err:
        too_few = err  # raised after the notes below, which may say where the images went
    report_skipped(skipped, layout, written=too_few is None)
    if root is not None and data.source == "folder":
        report_unfiled(dataset, root, skipped, layout)
        report_predict_outputs(root, layout)
    if too_few is not None:
        raise too_few
    manifest = write_dataset(fit_dataset(dataset, params.model.input_size), layout.dataset_dir, skipped)
    shape = "x".join(str(d) for d in manifest["image_shape"])
    return (
        f"fetched {data.source}: {manifest['count']} images of {shape} ({manifest['resize_rule']}), "
        f"{len(manifest['classes'])} classes -> {layout.relative(layout.dataset_dir)} "
        f"(sha256 {manifest['checksum'][:12]})"
    )

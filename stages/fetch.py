"""DVC stage `fetch`: load `data.source` and store it once in the uniform format at data/dataset/.

Usage: python stages/fetch.py   (reads params.yaml: data.source, data.root, data.image_size, data.grayscale)

Download sources are cached under data/raw/ (git-ignored) unless data.root names an offline copy;
image trees (imagenet10, imagenet-dogs15, folder) are read from data.root.
"""

from __future__ import annotations

import logging
from pathlib import Path

from _common import DATASET_DIR, ROOT, read_params, relative, run_stage

from gatcluster.config import DataConfig
from gatcluster.data.sources import load_source
from gatcluster.data.store import write_dataset
from gatcluster.data.walk import SkippedFile
from gatcluster.preflight import check_data_size, resolve_data_root

RAW_CACHE = ROOT / "data" / "raw"
SHOWN_SKIPS = 5

log = logging.getLogger("fetch")


def data_root(data: DataConfig) -> Path | None:
    """data.root as a path (relative ones against the project root); PreflightError when unusable."""
    return resolve_data_root(data, ROOT)


def report_skipped(skipped: list[SkippedFile]) -> None:
    """Warn about files left out of an image tree: the count and the first few with reasons."""
    if not skipped:
        return
    log.warning("skipped %d unreadable or non-image files:", len(skipped))
    for item in skipped[:SHOWN_SKIPS]:
        log.warning("  %s: %s", relative(item.path), item.reason)
    if len(skipped) > SHOWN_SKIPS:
        log.warning("  ... and %d more", len(skipped) - SHOWN_SKIPS)


def main() -> None:
    """Fetch the configured source and write it to data/dataset/."""
    params = read_params()
    data = params.data
    channels = 1 if data.grayscale else 3
    dataset, skipped = load_source(data.source, data_root(data), data.image_size, channels, RAW_CACHE)
    report_skipped(skipped)
    check_data_size(params, len(dataset.images), f"data.source {data.source}")  # before writing anything
    manifest = write_dataset(dataset, DATASET_DIR)
    shape = "x".join(str(d) for d in manifest["image_shape"])
    print(
        f"fetched {data.source}: {manifest['count']} images of {shape}, {len(manifest['classes'])} classes "
        f"-> {relative(DATASET_DIR)} (sha256 {manifest['checksum'][:12]})"
    )


if __name__ == "__main__":
    run_stage(main)

"""DVC stage `fetch`: load `data.source` and store it once in the uniform format at data/dataset/.

Usage: python stages/fetch.py   (reads params.yaml: data.source, data.root)
"""

from __future__ import annotations

from _common import DATASET_DIR, StageError, read_params, relative, run_stage

from gatcluster.data.bundled import BUNDLED_SOURCES
from gatcluster.data.store import ImageDataset, write_dataset


def load_source(source: str) -> ImageDataset:
    """The images of `source`; a StageError for a source that is not implemented yet."""
    if source not in BUNDLED_SOURCES:
        available = ", ".join(BUNDLED_SOURCES)
        raise StageError(f"data.source {source!r} is not available yet; available sources: {available}")
    return BUNDLED_SOURCES[source]()


def main() -> None:
    """Fetch the configured source and write it to data/dataset/."""
    source = read_params().data.source
    manifest = write_dataset(load_source(source), DATASET_DIR)
    shape = "x".join(str(d) for d in manifest["image_shape"])
    print(
        f"fetched {source}: {manifest['count']} images of {shape}, {len(manifest['classes'])} classes "
        f"-> {relative(DATASET_DIR)} (sha256 {manifest['checksum'][:12]})"
    )


if __name__ == "__main__":
    run_stage(main)

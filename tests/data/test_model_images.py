"""ModelImages: a stored data set read from disk per request, equal to the in-memory tensor."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params
from gatcluster.data.model_images import ModelImages, RowPrefetch
from gatcluster.data.prepare import ImageSizeError, prepare_images
from gatcluster.data.store import ImageDataset, read_dataset, write_dataset
from gatcluster.training.fit import fit


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[np.ndarray, ImageDataset]:
    """60 random 32×32 RGB images written as a data set, and the same read back memory-mapped."""
    images = np.random.default_rng(0).integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
    out = tmp_path_factory.mktemp("stored") / "dataset"
    write_dataset(ImageDataset(images, np.arange(60) % 3, ["a", "b", "c"], "folder"), out)
    return images, read_dataset(out, mapped=True)


@pytest.mark.parametrize("grayscale", [True, False])
def test_rows_equal_the_prepared_tensor(stored, grayscale):
    images, dataset = stored
    assert isinstance(dataset.images, np.memmap)
    lazy, eager = ModelImages(dataset.images, 32, grayscale), prepare_images(images, 32, grayscale)
    assert lazy.shape == tuple(eager.shape) and len(lazy) == len(eager)
    idx = torch.tensor([5, 0, 59, 5])
    assert torch.equal(lazy[idx], eager[idx])
    assert torch.equal(lazy[10:17], eager[10:17])
    assert torch.equal(lazy[3], eager[3])


def test_grey_images_get_three_channels_for_an_rgb_model():
    grey = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 1), dtype=np.uint8)
    rows = ModelImages(grey, 32, grayscale=False)[0:4]
    assert rows.shape == (4, 3, 32, 32) and torch.equal(rows[:, 0], rows[:, 2])


def test_a_size_that_is_not_the_model_input_asks_to_fetch_again():
    with pytest.raises(ImageSizeError, match="dvc repro fetch"):
        ModelImages(np.zeros((2, 28, 28, 1), np.uint8), 32, True)


def test_prefetch_returns_the_rows_asked_for_even_when_another_was_read_ahead(stored):
    _, dataset = stored
    images = ModelImages(dataset.images, 32, True)
    prefetch = RowPrefetch(images, pin=False)
    ahead, other = torch.tensor([1, 2, 3]), torch.tensor([7, 8])
    prefetch.start(ahead)
    assert torch.equal(prefetch.take(ahead, torch.device("cpu")), images[ahead])
    prefetch.start(ahead)
    assert torch.equal(prefetch.take(other, torch.device("cpu")), images[other])


def mapped_rss_mib(path: Path) -> float:
    """Resident memory (MiB) of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if not line[:1].isupper():  # a mapping's header line: "start-end perms offset dev inode path"
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total / 1024


def test_training_from_a_stored_data_set_never_loads_or_keeps_it(tmp_path):
    # 12,000 RGB images (35 MiB on disk), read whole by the checksum check and by the BatchNorm
    # refit over every image at the end of training. Held in memory they would show as 35 MiB of
    # numpy arrays (tracemalloc sees numpy's allocations) or as resident pages of the mapping;
    # read per request, neither exceeds a few large batches. (The peak RSS of the whole process
    # is measured by benchmarks/memory.py --dataset-sizes: 1.03× from 70,000 to 700,000 images.)
    tile = np.random.default_rng(2).integers(0, 256, (1000, 32, 32, 3), dtype=np.uint8)
    write_dataset(ImageDataset(np.tile(tile, (12, 1, 1, 1)), None, [], "folder"), tmp_path / "dataset")
    npy = (tmp_path / "dataset" / "images.npy").resolve()
    assert npy.stat().st_size > 35 * 2**20
    overrides = {
        "data.source": "folder",
        "train.iterations": 1,
        "train.large_batch": 200,
        "train.sub_batch": 32,
        "experimental.target_chunk": 500,
        "train.checkpoint_every": 0,
        "train.eval_every": 0,
        "train.device": "cpu",
    }
    # A first run on a small tensor does the lazy imports (torch._dynamo by the optimizer: ~65 MiB
    # of Python objects) outside the measurement, whichever test ran before in this process.
    warm_up = torch.from_numpy(tile[:256, ..., :1].transpose(0, 3, 1, 2).copy())
    fit(replace_params(Params(), overrides), warm_up)
    tracemalloc.start()
    try:
        dataset = read_dataset(tmp_path / "dataset", mapped=True)  # with the checksum check
        fit(replace_params(Params(), overrides), ModelImages(dataset.images, 32, True))
        numpy_peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert numpy_peak < 10, numpy_peak
    assert mapped_rss_mib(npy) < 10


def test_the_read_ahead_thread_stops_when_closed(tmp_path):
    import threading

    images = ModelImages(np.zeros((8, 4, 4, 1), dtype=np.uint8), 4, True)
    prefetch = RowPrefetch(images, pin=False)
    prefetch.start(torch.arange(4))
    assert prefetch.take(torch.arange(4), torch.device("cpu")).shape == (4, 1, 4, 4)
    prefetch.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("gat-prefetch")]

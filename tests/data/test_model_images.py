"""ModelImages: a stored data set read from disk per request, equal to the in-memory tensor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gatcluster.data.model_images import ModelImages, RowPrefetch
from gatcluster.data.prepare import ImageSizeError, prepare_images
from gatcluster.data.store import ImageDataset, read_dataset, write_dataset

REPO = Path(__file__).resolve().parents[2]


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


TRAIN_FROM_DISK = """
import json, sys
from pathlib import Path
import torch
torch.set_num_threads(2)
from gatcluster.config.params import Params, replace_params
from gatcluster.data.model_images import ModelImages
from gatcluster.data.store import read_dataset
from gatcluster.training.fit import fit

overrides = {"data.source": "folder", "train.iterations": 1, "train.large_batch": 200,
             "train.sub_batch": 32, "train.target_chunk": 500, "train.checkpoint_every": 0,
             "train.eval_every": 0, "train.device": "cpu"}
dataset = read_dataset(Path(sys.argv[1]), mapped=True)  # with the checksum check: reads it all
fit(replace_params(Params(), overrides), ModelImages(dataset.images, 32, True))  # refits BatchNorm on all
# VmHWM: this process's own peak (getrusage's ru_maxrss would include the parent's at fork time)
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"peak": int(peak.split()[1]) / 1024}))
"""


def peak_rss_of_training(data_dir: Path) -> float:
    """Peak RSS (MiB) of a fresh process that trains one iteration from the stored data set."""
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_FROM_DISK, str(data_dir)],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["peak"]


def test_training_from_a_stored_data_set_larger_than_its_memory_budget_never_loads_it(tmp_path):
    # 5,000 and 40,000 RGB images (15 and 117 MiB on disk), each read whole twice: the checksum
    # check and the BatchNorm refit over every image. Loaded into memory, the larger one would
    # add 103 MiB; read per request, the two processes' peaks differ by less than 30 MiB.
    tile = np.random.default_rng(2).integers(0, 256, (1000, 32, 32, 3), dtype=np.uint8)
    peaks = {}
    for count in (5_000, 40_000):
        images = np.tile(tile, (count // 1000, 1, 1, 1))
        write_dataset(ImageDataset(images, None, [], "folder"), tmp_path / str(count))
        peaks[count] = peak_rss_of_training(tmp_path / str(count))
    assert (tmp_path / "40000" / "images.npy").stat().st_size > 117 * 2**20
    print(peaks)
    assert peaks[40_000] - peaks[5_000] < 30, peaks

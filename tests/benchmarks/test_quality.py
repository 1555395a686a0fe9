"""benchmarks/quality.py on a source that is not bundled: its preset, the offline copy under --root,
GATCluster and k-means scored on the same images; nothing is downloaded."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_scripts import run_script  # noqa: E402

SMOKE = ["train.iterations=1", "train.large_batch=128", "train.sub_batch=64", "experimental.kmeans_n_init=2"]


def write_idx(path: Path, array: np.ndarray) -> None:
    """One uncompressed idx file, as the offline copies' raw folders hold them."""
    path.write_bytes(struct.pack(f">I{array.ndim}I", 0x0800 + array.ndim, *array.shape) + array.tobytes())


def fashion_copy(root: Path) -> Path:
    """A small Fashion-MNIST offline copy in torchvision's layout: bright squares whose side is the class."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", 150), ("t10k", 50)):
        labels = (np.arange(count) % 10).astype(np.uint8)
        images = rng.integers(0, 40, (count, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i, 4 : 6 + 2 * label, 4 : 6 + 2 * label] = 255
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return root


def test_quality_on_an_offline_copy_of_a_download_source(tmp_path):
    root = fashion_copy(tmp_path / "mirror")
    out = tmp_path / "quality.json"
    args = ["--source", "fashion-mnist", "--root", str(root), "--seeds", "0", "--out", str(out)]
    stdout = run_script("quality.py", [*args, "--set", *SMOKE], tmp_path)
    assert "# source fashion-mnist" in stdout
    results = json.loads(out.read_text())
    for method in ("gatcluster", "kmeans"):
        (run,) = results[method]
        assert 0.0 <= run["acc"] <= 1.0 and run["seconds"] > 0
    # k-means on these pixels finds the ten square sizes: the same 200 images were scored.
    assert results["kmeans"][0]["acc"] > 0.9

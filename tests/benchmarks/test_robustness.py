"""benchmarks/robustness.py: every variant trains in its own arithmetic, the table reads back, and a
second run with the same --out skips the finished cells."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_scripts import REPO, run_script  # noqa: E402

PER_CLASS = 6  # 60 images: float64 convolutions are slow, and all 1,797 digits took 13 s in float64
SMOKE = ["train.iterations=1", "train.large_batch=60", "train.sub_batch=30"]


def digit_folder(root: Path, dataset) -> Path:
    """root/<digit>/<n>.png: the first PER_CLASS real digits of each class, labelled by folder."""
    from PIL import Image

    for digit in range(10):
        (root / str(digit)).mkdir(parents=True)
        for n, i in enumerate(np.flatnonzero(dataset.labels == digit)[:PER_CLASS]):
            Image.fromarray(dataset.images[i][..., 0]).save(root / str(digit) / f"{n}.png")
    return root


def robustness(out: Path, images: Path) -> str:
    cells = ["--variants", "fp64-nchw", "avx2-cl", "--seeds", "0", "--out", str(out)]
    data = ["data.source=folder", f"data.root={images}"]
    return run_script("robustness.py", [*cells, "--set", *data, *SMOKE], REPO)


def test_robustness_table_and_resume(tmp_path, digits_dataset):
    out, images = tmp_path / "cells.jsonl", digit_folder(tmp_path / "digits", digits_dataset)
    first = robustness(out, images)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_variant = {r["variant"]: r for r in rows}
    assert sorted(by_variant) == ["avx2-cl", "fp64-nchw"]
    assert all(0.0 <= r["acc"] <= 1.0 for r in rows)
    # The AVX2 cell ran a CPU without AVX-512's kernels, whatever this CPU has; the other this CPU's.
    assert by_variant["avx2-cl"]["cpu_capability"] == "AVX2" and not by_variant["avx2-cl"]["native_bf16"]
    assert by_variant["fp64-nchw"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "spread over 2 cells" in first and "worst cell" in first
    second = robustness(out, images)  # nothing left to train: the same table from the file
    assert len(out.read_text().splitlines()) == 2
    assert second.splitlines()[-3:] == first.splitlines()[-3:]

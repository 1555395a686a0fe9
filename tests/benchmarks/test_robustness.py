"""benchmarks/robustness.py: every variant trains in its own arithmetic, the table reads back, and a
second run with the same --out skips the finished cells."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_scripts import REPO, run_script  # noqa: E402

SMOKE = ["data.source=digits", "train.iterations=1", "train.large_batch=128", "train.sub_batch=64"]


def robustness(out: Path) -> str:
    args = ["--variants", "fp64-nchw", "fp32-cl-1t", "--seeds", "0", "--out", str(out), "--set", *SMOKE]
    return run_script("robustness.py", args, REPO)


def test_robustness_table_and_resume(tmp_path):
    out = tmp_path / "cells.jsonl"
    first = robustness(out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["variant"] for r in rows) == ["fp32-cl-1t", "fp64-nchw"]
    assert all(0.0 <= r["acc"] <= 1.0 for r in rows)
    assert "spread over 2 cells" in first and "worst cell" in first
    second = robustness(out)  # nothing left to train: the same table from the file
    assert len(out.read_text().splitlines()) == 2
    assert second.splitlines()[-3:] == first.splitlines()[-3:]

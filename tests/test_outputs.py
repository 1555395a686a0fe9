"""Prediction tables: format choice, rows, and atomic files that an interruption never leaves half done."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from gatcluster.outputs import TableWriter, columns, format_for
from gatcluster.predict import Prediction


def predictions(n: int) -> list[Prediction]:
    return [
        Prediction(Path(f"img{i}.png"), i % 2, f"c{i % 2}", 0.9, [0.9, 0.1], np.zeros((2, 2)))
        for i in range(n)
    ]


def test_format_comes_from_the_flag_then_the_suffix():
    assert format_for(None, None) == "csv" and format_for(Path("a.parquet"), None) == "parquet"
    assert format_for(Path("a.ndjson"), None) == "jsonl" and format_for(Path("a.csv"), "jsonl") == "jsonl"
    assert columns(2) == ["path", "cluster", "cluster_name", "confidence", "p_0", "p_1"]


def test_interrupted_write_leaves_no_file(tmp_path):
    out = tmp_path / "preds.csv"
    with pytest.raises(KeyboardInterrupt), TableWriter(out, "csv", 2) as table:
        table.write(predictions(3))
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_replaced_only_on_success(tmp_path):
    out = tmp_path / "preds.csv"
    out.write_text("old\n")
    with pytest.raises(RuntimeError), TableWriter(out, "csv", 2) as table:
        table.write(predictions(1))
        raise RuntimeError("disk full")
    assert out.read_text() == "old\n"
    with TableWriter(out, "csv", 2) as table:
        table.write(predictions(2))
    rows = list(csv.DictReader(out.open()))
    assert [r["cluster_name"] for r in rows] == ["c0", "c1"]


def test_empty_parquet_is_still_a_readable_table(tmp_path):
    import pyarrow.parquet as pq

    with TableWriter(tmp_path / "p.parquet", "parquet", 2):
        pass
    assert pq.read_table(tmp_path / "p.parquet").column_names == columns(2)


def test_parquet_needs_a_file():
    with pytest.raises(ValueError, match="needs --out"):
        TableWriter(None, "parquet", 2)

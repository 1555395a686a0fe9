"""Prediction tables: format choice, rows, and atomic files that an interruption never leaves half done."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from gatcluster.serving.onnx_predict import Prediction
from gatcluster.serving.outputs import OutputFormatError, TableWriter, columns, format_for


def predictions(n: int) -> list[Prediction]:
    return [
        Prediction(
            Path(f"img{i}.png"), i % 2, f"c{i % 2}", 0.9, [0.9, 0.1], np.zeros((2, 2)), np.zeros((4, 4, 3))
        )
        for i in range(n)
    ]


def test_format_comes_from_the_suffix_or_the_flag():
    assert format_for(None, None) == "csv" and format_for(None, "jsonl") == "jsonl"  # stdout
    assert format_for(Path("a.parquet"), None) == "parquet" and format_for(Path("a.ndjson"), None) == "jsonl"
    assert format_for(Path("a.CSV"), "csv") == "csv" and format_for(Path("table"), "jsonl") == "jsonl"
    assert columns(2) == ["path", "cluster", "cluster_name", "confidence", "p_0", "p_1"]


@pytest.mark.parametrize(
    ("name", "flag", "message"),
    [
        ("y.csv", "jsonl", "y.csv is csv by its name but --format is jsonl"),
        ("x.json", None, "cannot tell the table format from --out x.json"),
        ("x.xlsx", None, "cannot tell the table format from --out x.xlsx"),
        ("clusters", None, "cannot tell the table format from --out clusters"),
        ("x.csv", "xlsx", "--format must be one of csv, jsonl, parquet"),
        ("photo.png", "csv", "cannot tell the table format from --out photo.png: name it .csv"),
        ("gatcluster.onnx", "jsonl", "cannot tell the table format from --out gatcluster.onnx"),
    ],
)
def test_unknown_or_clashing_formats_are_errors(name, flag, message):
    with pytest.raises(OutputFormatError, match=message):
        format_for(Path(name), flag)


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


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_no_rows_write_no_table(tmp_path, fmt, capsys):
    with TableWriter(tmp_path / f"p.{fmt}", fmt, 2) as table:
        table.write([])
    assert list(tmp_path.iterdir()) == []
    with TableWriter(None, "csv", 2):
        pass
    assert capsys.readouterr().out == ""  # not even a header on stdout


def test_parquet_needs_a_file():
    with pytest.raises(ValueError, match="needs --out"):
        TableWriter(None, "parquet", 2)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_file_name_that_is_not_utf8_is_written_with_escapes(tmp_path, fmt):
    odd = Prediction(
        Path(os.fsdecode(b"bad\xff\xfename.png")),
        0,
        "c0",
        0.9,
        [0.9, 0.1],
        np.zeros((2, 2)),
        np.zeros((4, 4, 3)),
    )
    out = tmp_path / f"t.{fmt}"
    with TableWriter(out, fmt, 2) as table:
        table.write([odd, *predictions(1)])
    if fmt == "parquet":
        paths = __import__("pyarrow.parquet").parquet.read_table(out).column("path").to_pylist()
    elif fmt == "csv":
        paths = [r["path"] for r in csv.DictReader(out.open(encoding="utf-8"))]
    else:
        paths = [json.loads(line)["path"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert paths == ["bad\\xff\\xfename.png", "img0.png"]


def test_a_table_named_through_a_link_is_written_through_it(tmp_path):
    (tmp_path / "real.csv").write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to("real.csv")
    with TableWriter(link, "csv", 2) as table:
        table.write(predictions(2))
    assert link.is_symlink() and (tmp_path / "real.csv").read_text().startswith("path,cluster")

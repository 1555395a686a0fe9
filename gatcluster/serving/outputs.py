"""Prediction tables written as they stream: CSV, JSON Lines or Parquet, atomically.

A file output is written to a temporary file beside it and renamed into place only when the run
completes, so an interrupted `gat predict` never leaves a half-written table. Nothing is written
until the first row: a run that clusters no image leaves no table (not even a header).
"""

from __future__ import annotations

import csv
import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from gatcluster.atomic import atomic_path, file_target
from gatcluster.path_text import path_text
from gatcluster.serving.onnx_predict import Prediction

FORMATS = ("csv", "jsonl", "parquet")
SUFFIX_FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class OutputFormatError(ValueError):
    """The output format cannot be told from --out, or --out and --format disagree."""


def format_for(path: Path | None, requested: str | None) -> str:
    """The output format: from --out's suffix and/or --format; CSV on stdout by default.

    A suffix that names no table format (`.json`, `.png`, `.onnx`: with or without --format), a
    known one that contradicts --format, or no suffix without --format is an `OutputFormatError`:
    a file never holds another format than its name says, and a typo never replaces an input image
    or the model with a table.
    """
    if requested is not None and requested not in FORMATS:
        raise OutputFormatError(f"--format must be one of {', '.join(FORMATS)}; got {requested!r}")
    if path is None:
        return requested or "csv"
    by_suffix = SUFFIX_FORMATS.get(path.suffix.lower())
    if by_suffix and requested and by_suffix != requested:
        raise OutputFormatError(
            f"--out {path} is {by_suffix} by its name but --format is {requested}: make them agree"
        )
    # An unknown suffix is refused even with --format: never a table named like an image or a model.
    if by_suffix is None and (path.suffix or requested is None):
        known = ", ".join(SUFFIX_FORMATS)
        alternative = "" if path.suffix else ", or pass --format"
        raise OutputFormatError(
            f"cannot tell the table format from --out {path}: name it {known}{alternative}"
        )
    return by_suffix or requested


def columns(num_clusters: int) -> list[str]:
    """Table columns: path, cluster, cluster_name, confidence, p_0 .. p_{K-1}."""
    return ["path", "cluster", "cluster_name", "confidence", *(f"p_{k}" for k in range(num_clusters))]


def row(p: Prediction) -> list:
    """One table row for a prediction (its path as `path_text`: a file name that is not UTF-8 has
    `\\xNN` escapes for those bytes)."""
    return [path_text(p.path), p.cluster, p.name, round(p.confidence, 6), *(round(v, 6) for v in p.probs)]


class TableWriter:
    """Streams prediction rows to stdout or, atomically, to a file in one of FORMATS."""

    def __init__(self, path: Path | None, fmt: str, num_clusters: int) -> None:
        if fmt == "parquet" and path is None:
            raise ValueError("Parquet output needs --out FILE (it is a binary format)")
        self.path, self.fmt, self.names = path, fmt, columns(num_clusters)
        self.tmp: Path | None = None
        self.atomic = ExitStack()  # renames tmp onto path on a clean exit, removes it otherwise
        self.stream: IO[str] | None = None
        self.parquet = None
        self.rows = 0

    def __enter__(self) -> TableWriter:
        return self

    def _open(self) -> None:
        """Start the table at the first row: the temporary file (or stdout) and the header."""
        if self.path is not None:
            # A table the user named through a link is written through it (the link stays).
            self.tmp = self.atomic.enter_context(atomic_path(file_target(self.path)))
        if self.fmt != "parquet":
            # UTF-8 whatever the locale's encoding: file names in the table are any unicode.
            self.stream = open(self.tmp, "w", encoding="utf-8", newline="") if self.tmp else sys.stdout  # noqa: SIM115
            if self.tmp:  # closed (flushed) inside the atomic write: a failed flush is its error
                self.atomic.callback(self.stream.close)
            self.csv = csv.writer(self.stream, lineterminator="\n") if self.fmt == "csv" else None
            if self.csv:
                self.csv.writerow(self.names)

    def write(self, predictions: list[Prediction]) -> None:
        """Append rows for `predictions`."""
        if not predictions:
            return
        if self.rows == 0:
            self._open()
        self.rows += len(predictions)
        if self.fmt == "csv":
            self.csv.writerows(row(p) for p in predictions)
        elif self.fmt == "jsonl":
            for p in predictions:
                self.stream.write(json.dumps(dict(zip(self.names, row(p), strict=True))) + "\n")
        else:
            self._write_parquet([row(p) for p in predictions])

    def _write_parquet(self, rows: list[list]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([dict(zip(self.names, r, strict=True)) for r in rows])
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(str(self.tmp), table.schema)
            self.atomic.callback(self.parquet.close)
        self.parquet.write_table(table.cast(self.parquet.schema))

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.stream is sys.stdout:
            sys.stdout.flush()
        self.atomic.__exit__(exc_type, exc, tb)  # closes the file, then renames it or removes it

"""The benchmark scripts' shared command line: positive counts, and library errors in one line."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from gatcluster.config.params import ParamsError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from cli_args import positive_int, run_main  # noqa: E402


def test_counts_must_be_one_or_more():
    assert positive_int("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="0 is not 1 or more"):
        positive_int("0")
    with pytest.raises(ValueError):
        positive_int("two")


def test_a_library_error_is_one_line_with_exit_2(capsys):
    def main() -> None:
        raise ParamsError("train.lr must be > 0")

    with pytest.raises(SystemExit) as done:
        run_main(main)
    assert done.value.code == 2 and capsys.readouterr().err == "error: train.lr must be > 0\n"


def test_a_bad_set_pair_stops_a_script_before_any_work():
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "train_speed.py"), "--set", "train.lr"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "error: 'train.lr' is not KEY=VALUE (e.g. train.lr=0.001)"

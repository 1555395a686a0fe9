"""benchmarks/op_count.py counts each part of an iteration; a step's network part reads nothing back."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_scripts import run_script  # noqa: E402


def test_op_count_names_every_part_and_a_step_without_host_reads(tmp_path):
    out = run_script("op_count.py", ["--source", "digits", "--threads", "1"], tmp_path)
    rows = dict(re.findall(r"^  (.+?)\s+(\d+ ops\s+\d+ host reads)$", out, flags=re.MULTILINE))
    assert len(rows) == 4 and "14 steps per iteration" in out
    network = rows["one optimizer step: forward, losses, backward"]
    assert int(network.split()[0]) > 100 and network.endswith(" 0 host reads")

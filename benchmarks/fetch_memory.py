"""Peak memory of fetching an image folder: 5,000 vs 50,000 small files (the promise: ratio <= 1.2).

The fetch stage decodes image trees (`folder`, ImageNet subsets) in chunks straight into a
disk-backed array and writes the store from it in chunks, so its peak memory should not grow with
the number of files. Each count runs the fetch stage's own code (`run_fetch`, `data.source:
folder`) in a fresh child process on a folder of distinct 40x40 colour PNGs (fitted to 32x32 by
the small32 backbone), and reports that child's peak RSS (VmHWM) and wall time.

    .venv/bin/python benchmarks/fetch_memory.py                       # 5,000 and 50,000 files
    .venv/bin/python benchmarks/fetch_memory.py --counts 2000 20000 --keep /tmp/folders
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIDE = 40


def make_folder(folder: Path, count: int) -> Path:
    """`count` distinct SIDE x SIDE colour PNGs in ten class sub-folders (kept when already there)."""
    done = folder / ".complete"
    if done.is_file():
        return folder
    rng = np.random.default_rng(count)
    for i in range(count):
        sub = folder / f"class{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(sub / f"{i:06d}.png", compress_level=1)
    done.touch()
    return folder


CHILD = """
import json, sys, time
from pathlib import Path
from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params
from gatcluster.pipeline.fetch_stage import run_fetch
from gatcluster.pipeline.layout import ProjectLayout

folder, project = Path(sys.argv[1]), Path(sys.argv[2])
params = replace_params(Params(), {"data.source": "folder", "data.root": str(folder)})
start = time.perf_counter()
line = run_fetch(params, ProjectLayout(project))
seconds = time.perf_counter() - start
status = Path("/proc/self/status").read_text().splitlines()
peak = next(int(s.split()[1]) for s in status if s.startswith("VmHWM:")) / 1024
print(json.dumps({"line": line, "seconds": seconds, "peak_rss_mib": peak}))
"""


def measure(folder: Path, project: Path) -> dict:
    """Run the fetch stage in a fresh child process; its report, time and peak RSS."""
    project.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(project)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--keep", type=Path, help="keep the generated folders here (reused next time)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fetch-memory-") as tmp:
        base = args.keep or Path(tmp)
        results = []
        for count in args.counts:
            start = time.perf_counter()
            folder = make_folder(base / f"folder-{count}", count)
            made = time.perf_counter() - start
            result = {"files": count, **measure(folder, Path(tmp) / f"project-{count}")}
            print(
                f"{count:>7} files: peak RSS {result['peak_rss_mib']:7.1f} MiB, "
                f"fetch {result['seconds']:6.1f} s (folder made in {made:.0f} s)",
                flush=True,
            )
            results.append(result)
        if len(results) > 1:
            ratio = results[-1]["peak_rss_mib"] / results[0]["peak_rss_mib"]
            print(f"ratio {args.counts[-1]} / {args.counts[0]} files: RSS {ratio:.3f} (promise <= 1.2)")


if __name__ == "__main__":
    main()

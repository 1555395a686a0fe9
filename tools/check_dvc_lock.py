"""Does dvc.lock describe the committed code and params? CI fails when it does not.

`dvc status` compares every stage's deps with what dvc.lock recorded. A dep that changed (code
under stages/ or gatcluster/, a param, the command) means the committed metrics came from other
code than the committed one: run `make repro` and commit dvc.lock with the reports. Deps reported
as deleted are data and models that a fresh clone has not pulled; they say nothing about the code.

    .venv/bin/python tools/check_dvc_lock.py     # exit 0: dvc.lock matches; 1: it is stale (what changed)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_PULLED = ("deleted", "not in cache")


def dvc_status(root: Path) -> dict:
    """`dvc status --json` of the project at `root`."""
    dvc = Path(sys.executable).parent / "dvc"
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run([str(dvc), "status", "--json"], cwd=root, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"dvc status failed: {result.stderr.strip()}")
    return json.loads(result.stdout or "{}")


def stale_stages(status: dict) -> dict[str, list[str]]:
    """stage -> what changed since dvc.lock (code, params, command); data not pulled is ignored."""
    stale: dict[str, list[str]] = {}
    for stage, entries in status.items():
        for entry in entries:
            if not isinstance(entry, dict):  # e.g. "changed command", "always changed"
                stale.setdefault(stage, []).append(str(entry))
                continue
            for path, change in entry.get("changed deps", {}).items():
                if isinstance(change, dict):  # params.yaml: {key: change}
                    stale.setdefault(stage, []).extend(f"{path}:{key} {how}" for key, how in change.items())
                elif change not in NOT_PULLED:
                    stale.setdefault(stage, []).append(f"{path} {change}")
    return stale


def main() -> int:
    stale = stale_stages(dvc_status(ROOT))
    for stage, changes in stale.items():
        shown = ", ".join(changes[:5]) + (f" and {len(changes) - 5} more" if len(changes) > 5 else "")
        print(f"dvc.lock is stale for stage {stage}: {shown}", file=sys.stderr)
    if stale:
        print("run `make repro` and commit dvc.lock with the reports", file=sys.stderr)
        return 1
    print("dvc.lock matches the code and params")
    return 0


if __name__ == "__main__":
    sys.exit(main())

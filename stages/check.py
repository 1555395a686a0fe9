"""DVC stage `check`: validate the whole params.yaml against the data before any stage runs.

Usage: python stages/check.py   (reads every key of params.yaml; `gat check` runs the same checks)

Every other stage depends on its output, so a bad param stops `dvc repro` here, before DVC deletes
the previous model, curves and reports. Writes reports/check.json (the same content whenever the
params are valid, so a passing check never re-runs the stages after it).
"""

from __future__ import annotations

from _common import DATASET_DIR, ROOT, read_params, run_stage
from fetch import data_root

from gatcluster.atomic import write_json_atomic
from gatcluster.preflight import PreflightError, check_data_size, expected_count

CHECK_FILE = ROOT / "reports" / "check.json"


def main() -> None:
    """Validate params.yaml (schema, then data size where it is known) and record that it passed."""
    params = read_params()
    count, where = expected_count(params, DATASET_DIR, data_root(params.data))
    if count is not None:
        check_data_size(params, count, where)
    write_json_atomic(CHECK_FILE, {"params": "valid"})
    print(f"params.yaml is valid ({where}: {count if count is not None else '?'} images)")


if __name__ == "__main__":
    run_stage(main, failures=(PreflightError,))

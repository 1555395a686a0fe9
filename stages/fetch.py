"""DVC stage `fetch`: load `data.source`, fit it to the model input, store it at data/dataset/.

Usage: python stages/fetch.py   (reads params.yaml: data.source, data.root, model.backbone)

The work is `gatcluster.pipeline.fetch_stage.run_fetch`; this script reads params.yaml.
"""

from __future__ import annotations

from _common import LAYOUT, read_params, run_stage

from gatcluster.pipeline.fetch_stage import run_fetch


def main() -> None:
    """Fetch the configured source into data/dataset/."""
    print(run_fetch(read_params(), LAYOUT))


if __name__ == "__main__":
    run_stage(main)

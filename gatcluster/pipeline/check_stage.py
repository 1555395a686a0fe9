"""The `check` stage: the whole params.yaml against the data, before any stage deletes an output.

Every other stage depends on its output, reports/check.json, whose content is the same whenever the
params are valid, so a passing check never re-runs the stages after it.
"""

from __future__ import annotations

from gatcluster.atomic import write_json_atomic
from gatcluster.config.params import DATA_ROOT_KINDS, DataConfig, Params
from gatcluster.pipeline.layout import ProjectLayout
from gatcluster.pipeline.preflight import (
    check_class_folders,
    check_data_size,
    check_training_device,
    expected_count,
    resolve_data_root,
)


def check_against_data(params: Params, layout: ProjectLayout) -> str:
    """Check the data size where it is known (the schema was checked on loading), an ImageNet
    tree's class folders and that the training device is there; what was checked.

    `gat check` runs this too (and writes nothing); PreflightError says what is wrong.
    """
    root = resolve_data_root(params.data, layout.root)
    check_class_folders(params.data.source, root)
    count, where = expected_count(params, layout.dataset_dir, root)
    if count is not None:
        check_data_size(params, count, where)
    check_training_device(params.train.device)
    return f"valid ({where}: {count if count is not None else '?'} images){unread_root_note(params.data)}"


def unread_root_note(data: DataConfig) -> str:
    """A note where data.root is set but the source is bundled and reads no folder; the value is
    kept, not an error: `gat preset` keeps it when switching to a bundled source and back."""
    if data.root is None or DATA_ROOT_KINDS[data.source] is not None:
        return ""
    return f"; note: data.root is not read, data.source {data.source} comes with an installed package"


def run_check(params: Params, layout: ProjectLayout) -> str:
    """The stage: check, then record that the params passed; the report line."""
    checked = check_against_data(params, layout)
    write_json_atomic(layout.check_file, {"params": "valid"})
    return f"params.yaml is {checked}"

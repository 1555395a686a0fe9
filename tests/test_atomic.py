"""Atomic writes: the target changes only when writing completed, and no temporary file stays."""

from __future__ import annotations

import pytest

from gatcluster.atomic import atomic_path, write_json_atomic, write_text_atomic


def test_completed_block_renames_onto_the_target_in_a_new_folder(tmp_path):
    target = tmp_path / "new" / "report.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("done")
    assert target.read_text() == "done"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failed_block_keeps_the_old_file_and_removes_the_temporary(tmp_path, error):
    target = tmp_path / "model.pt"
    target.write_text("old")
    with pytest.raises(error), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise error
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_write_text_atomic_replaces_the_content(tmp_path):
    target = tmp_path / "a.txt"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two" and len(list(tmp_path.iterdir())) == 1


def test_write_json_atomic_writes_indented_json_with_a_final_newline(tmp_path):
    target = tmp_path / "run.json"
    write_json_atomic(target, {"run_id": "abc"})
    assert target.read_text() == '{\n  "run_id": "abc"\n}\n'

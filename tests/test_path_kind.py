"""What a path is, from one stat: files, folders, FIFOs, missing paths, broken links, refusals."""

from __future__ import annotations

import os

from gatcluster.path_kind import Kind, Looked, creation_problem, look_at, missing_reason


def test_each_kind_of_path_is_told_apart_without_raising(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")  # opening it would wait for a writer: never opened here
    (tmp_path / "to-file").symlink_to(tmp_path / "file")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    kinds = {
        name: look_at(tmp_path / name).kind
        for name in (
            "file",
            "folder",
            "fifo",
            "to-file",
            "dangling",
            "loop",
            "missing",
            "file/below",
            "loop/below",
        )
    }
    assert kinds == {
        "file": Kind.FILE,
        "folder": Kind.FOLDER,
        "fifo": Kind.SPECIAL,
        "to-file": Kind.FILE,  # links are followed
        "dangling": Kind.BROKEN_LINK,
        "loop": Kind.BROKEN_LINK,
        "missing": Kind.MISSING,
        "file/below": Kind.MISSING,  # ENOTDIR: a file where a folder would be
        "loop/below": Kind.MISSING,  # ELOOP on the way: the name itself is no link
    }
    too_long = look_at(tmp_path / ("x" * 300))  # is_file() raised here
    assert too_long == Looked(Kind.UNREADABLE, "File name too long")


def test_a_look_reads_as_the_reason_a_walk_gives_for_skipping():
    assert str(Looked(Kind.SPECIAL)) == "not a regular file"
    assert str(Looked(Kind.BROKEN_LINK)) == "broken symlink"
    assert str(Looked(Kind.UNREADABLE, "Permission denied")) == "unreadable (Permission denied)"


def test_what_stops_a_missing_path_from_being_made_is_the_first_thing_above_it(tmp_path):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert creation_problem(tmp_path / "new" / "deeper" / "x") is None  # folders are made on the way
    assert creation_problem(tmp_path / "a-file" / "x") == f"{tmp_path / 'a-file'} is a file, not a folder"
    assert creation_problem(tmp_path / "loop" / "x") == f"{tmp_path / 'loop'} is a broken symlink"


def test_a_missing_path_below_something_that_is_no_folder_says_what_that_is(tmp_path):
    (tmp_path / "a.onnx").write_text("x")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    assert missing_reason(tmp_path / "gone" / "deeper" / "x") == ""  # a mistyped name: nothing to add
    assert missing_reason(tmp_path / "a.onnx" / "x") == f" ({tmp_path / 'a.onnx'} is a file, not a folder)"
    assert missing_reason(tmp_path / "loop" / "x") == f" ({tmp_path / 'loop'} is a broken symlink)"
    assert (
        missing_reason(tmp_path / "dangling" / "x" / "y") == f" ({tmp_path / 'dangling'} is a broken symlink)"
    )


def test_odd_bytes_and_line_breaks_in_a_name_are_escaped_in_the_clause(tmp_path):
    # A clause goes into a one-line error: a newline cannot split it, bytes that are not UTF-8
    # cannot stop the line from being written.
    odd = os.fsdecode(b"bad\xff\nname")
    (tmp_path / odd).write_text("x")
    said = missing_reason(tmp_path / odd / "model.onnx")
    assert said == f" ({tmp_path}/bad\\xff\\nname is a file, not a folder)"
    said.encode("utf-8")  # no lone surrogate left

"""The file walk shared by the folder source and `gat predict`: order, hidden files, links, odd entries."""

from __future__ import annotations

import os
from pathlib import Path

from gatcluster.data.walk import OUTPUT_MARKER, SkippedFile, files_in, mark_output_folder, walk_files


def test_walk_is_sorted_recursive_and_survives_symlink_loops(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / "b" / "c" / "x.png").write_bytes(b"1")
    (tmp_path / "a.png").write_bytes(b"1")
    (tmp_path / ".hidden.png").write_bytes(b"1")
    os.symlink(tmp_path, tmp_path / "b" / "loop")
    os.symlink(tmp_path / "gone", tmp_path / "b" / "dangling.png")
    os.mkfifo(tmp_path / "pipe.png")
    os.mkfifo(tmp_path / "given-pipe")  # also given by name below
    too_long = tmp_path / ("x" * 300 + ".png")  # was an OSError that stopped gat predict
    items = list(walk_files([tmp_path, tmp_path / "missing.jpg", tmp_path / "given-pipe", too_long]))
    files = [i.name for i in items if not isinstance(i, SkippedFile)]
    reasons = {i.path.name: i.reason for i in items if isinstance(i, SkippedFile)}
    assert files == ["a.png", "x.png"]
    assert reasons == {
        "dangling.png": "broken symlink",
        "pipe.png": "not a regular file",
        "missing.jpg": "no such file or folder",
        "given-pipe": "not a regular file",
        too_long.name: "unreadable (File name too long)",
    }


def test_files_in_a_folder_leave_its_sub_folders_and_skip_what_is_not_a_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deeper.png").write_bytes(b"1")
    for name in ("b.png", "a.png", ".hidden.png"):
        (tmp_path / name).write_bytes(b"1")
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    assert list(files_in(tmp_path)) == [
        tmp_path / "a.png",
        tmp_path / "b.png",
        SkippedFile(tmp_path / "dangling.png", "broken symlink"),
        SkippedFile(tmp_path / "pipe.png", "not a regular file"),
    ]


def test_a_marked_output_folder_is_skipped_below_a_walked_folder_and_read_when_named(tmp_path):
    (tmp_path / "sorted" / "cluster-0").mkdir(parents=True)
    (tmp_path / "sorted" / "cluster-0" / "a.png").write_bytes(b"x")
    (tmp_path / "b.png").write_bytes(b"x")
    mark_output_folder(tmp_path / "sorted")
    mark_output_folder(tmp_path / "sorted")  # idempotent
    assert (tmp_path / "sorted" / OUTPUT_MARKER).is_file()
    assert list(walk_files([tmp_path])) == [tmp_path / "b.png"]
    assert list(walk_files([tmp_path / "sorted"])) == [tmp_path / "sorted" / "cluster-0" / "a.png"]


def test_a_folder_that_cannot_be_entered_is_reported_not_raised(tmp_path, monkeypatch):
    (tmp_path / "locked").mkdir()
    (tmp_path / "a.png").write_bytes(b"x")
    real_is_file = Path.is_file

    def refused(path: Path) -> bool:  # what a non-root user meets in lost+found (tests may run as root)
        if path.parent.name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_is_file(path)

    monkeypatch.setattr(Path, "is_file", refused)
    monkeypatch.setattr(Path, "iterdir", failing_iterdir(Path.iterdir))
    assert list(walk_files([tmp_path])) == [
        tmp_path / "a.png",
        SkippedFile(tmp_path / "locked", "unreadable folder (Permission denied)"),
    ]


def test_a_folder_that_can_be_listed_but_not_entered_is_reported_not_raised(tmp_path, unenterable):
    # Mode r-- (444): its names can be listed, but looking at any entry fails with EACCES, which
    # Path.is_dir passes on (it raised from every check of a data.root holding such a folder).
    (tmp_path / "listed").mkdir()
    for name in ("x.png", "y.png"):
        (tmp_path / "listed" / name).write_bytes(b"x")
    (tmp_path / "a.png").write_bytes(b"x")
    unenterable("listed")
    assert list(walk_files([tmp_path])) == [
        tmp_path / "a.png",
        SkippedFile(tmp_path / "listed", "unreadable folder (Permission denied)"),
    ]


def test_a_link_that_cannot_be_followed_is_skipped_alone(tmp_path, monkeypatch):
    # A link into a folder this user cannot enter fails with EACCES too, but its own folder is fine.
    (tmp_path / "cats").mkdir()
    for name in ("b.png", "c.png"):
        (tmp_path / "cats" / name).write_bytes(b"x")
    (tmp_path / "cats" / "a-link.png").symlink_to(tmp_path / "cats" / "b.png")
    real_stat = Path.stat

    def refused(path: Path, **kwargs: bool) -> os.stat_result:  # stat follows the link: refused
        if path.name == "a-link.png" and kwargs.get("follow_symlinks", True):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, **kwargs)

    monkeypatch.setattr(Path, "stat", refused)
    assert list(walk_files([tmp_path])) == [
        SkippedFile(tmp_path / "cats" / "a-link.png", "unreadable (Permission denied)"),
        tmp_path / "cats" / "b.png",
        tmp_path / "cats" / "c.png",
    ]


def failing_iterdir(real):
    def iterdir(path: Path):
        if path.name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    return iterdir


def test_the_walk_names_the_output_folders_it_left_out(tmp_path):
    (tmp_path / "gallery").mkdir()
    mark_output_folder(tmp_path / "gallery")
    found: list[Path] = []
    assert list(walk_files([tmp_path], found)) == [] and found == [tmp_path / "gallery"]

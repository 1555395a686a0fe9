"""`--sort-into`: inputs linked or copied into one folder per cluster, never overwriting anything."""

from __future__ import annotations

import os
from pathlib import Path

from gatcluster.cli.sort_into import ClusterSorter, cluster_folders, folder_name


def test_folder_names_keep_unicode_and_drop_separators():
    assert folder_name("chats été 猫", 0) == "chats été 猫"
    assert folder_name("a/b\\c:d", 1) == "a_b_c_d"
    assert folder_name("..", 2) == "cluster 2" and folder_name("tab\there", 3) == "tab_here"
    assert len(folder_name("é" * 500, 4).encode()) <= 200


def test_clusters_whose_names_clash_get_their_id():
    assert cluster_folders(["cat", "Cat", "dog", "a/b", "a_b"]) == [
        "cat (0)",
        "Cat (1)",
        "dog",
        "a_b (3)",
        "a_b (4)",
    ]


def make_inputs(root: Path) -> tuple[Path, Path]:
    (root / "one").mkdir(parents=True)
    (root / "two").mkdir()
    a, b = root / "one" / "photo.jpg", root / "two" / "photo.jpg"
    a.write_bytes(b"first")
    b.write_bytes(b"second")
    return a, b


def test_same_names_are_numbered_and_existing_files_untouched(tmp_path):
    a, b = make_inputs(tmp_path / "in")
    out = tmp_path / "sorted"
    (out / "cats").mkdir(parents=True)
    (out / "cats" / "photo.jpg").write_bytes(b"mine")  # the user's own file, already there
    sorter = ClusterSorter(out, ["cats", "dogs"], copy=False)
    first, second = sorter.place(a, 0), sorter.place(b, 0)
    assert (out / "cats" / "photo.jpg").read_bytes() == b"mine"
    assert first.path.name == "photo (2).jpg" and first.renamed and first.path.read_bytes() == b"first"
    assert second.path.name == "photo (3).jpg" and second.path.read_bytes() == b"second"
    assert os.readlink(first.path) == str(a.resolve())


def test_sorting_again_adds_nothing(tmp_path):
    a, b = make_inputs(tmp_path / "in")
    sorter = ClusterSorter(tmp_path / "sorted", ["cats", "dogs"], copy=False)
    sorter.place(a, 0)
    sorter.place(b, 1)
    again = [
        ClusterSorter(tmp_path / "sorted", ["cats", "dogs"], copy=False).place(p, k)
        for p, k in ((a, 0), (b, 1))
    ]
    assert all(p.already_there for p in again)
    assert sorted(p.name for p in (tmp_path / "sorted").rglob("*.jpg")) == ["photo.jpg", "photo.jpg"]


def test_copy_makes_independent_files(tmp_path):
    a, b = make_inputs(tmp_path / "in")
    sorter = ClusterSorter(tmp_path / "sorted", ["猫", "犬"], copy=True)
    placed = [sorter.place(a, 1), sorter.place(b, 1)]
    assert [p.path.parent.name for p in placed] == ["犬", "犬"]
    assert not any(p.path.is_symlink() for p in placed)
    a.write_bytes(b"changed")
    assert placed[0].path.read_bytes() == b"first" and placed[1].path.name == "photo (2).jpg"


def test_copying_again_adds_nothing_and_never_overwrites_a_different_file(tmp_path):
    a, b = make_inputs(tmp_path / "in")  # two different photo.jpg files
    out = tmp_path / "sorted"
    (out / "cats").mkdir(parents=True)
    (out / "cats" / "photo.jpg").write_bytes(b"mine")  # the user's own file, same name, other content
    first = [ClusterSorter(out, ["cats", "dogs"], copy=True).place(p, 0) for p in (a, b)]
    assert [p.path.name for p in first] == ["photo (2).jpg", "photo (3).jpg"]
    again = [ClusterSorter(out, ["cats", "dogs"], copy=True).place(p, 0) for p in (a, b)]
    assert all(p.already_there for p in again)
    assert [p.path for p in again] == [p.path for p in first]
    assert sorted(f.name for f in (out / "cats").iterdir()) == ["photo (2).jpg", "photo (3).jpg", "photo.jpg"]
    assert (out / "cats" / "photo.jpg").read_bytes() == b"mine"
    (out / "cats" / "photo (2).jpg").write_bytes(b"frist")  # same size, other content: not a copy of a
    third = ClusterSorter(out, ["cats", "dogs"], copy=True).place(a, 0)
    assert third.path.name == "photo (4).jpg" and not third.already_there
    assert (out / "cats" / "photo (2).jpg").read_bytes() == b"frist"

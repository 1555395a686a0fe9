"""`--sort-into`: inputs linked or copied into one folder per cluster, never overwriting anything."""

from __future__ import annotations

import os
from pathlib import Path

from gatcluster.cli.sort_into import ClusterSorter, cluster_folders, folder_name, numbered


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


def test_a_numbered_name_stays_within_the_file_name_limit(tmp_path):
    # Two inputs of one 255-byte name in one cluster: the second's " (2)" must not make it too long.
    long_name = "y" * 251 + ".png"
    a, b = tmp_path / "one" / long_name, tmp_path / "two" / long_name
    for path, content in ((a, b"first"), (b, b"second")):
        path.parent.mkdir()
        path.write_bytes(content)
    sorter = ClusterSorter(tmp_path / "sorted", ["cats"], copy=False)
    first, second = sorter.place(a, 0), sorter.place(b, 0)
    assert first.path.name == long_name and second.renamed
    assert second.path.name.endswith(" (2).png") and len(second.path.name.encode()) == 255
    assert second.path.read_bytes() == b"second"
    assert (
        numbered("é" * 200 + ".jpg", 12).endswith(" (12).jpg") and len(numbered("é" * 200, 3).encode()) <= 255
    )


def test_a_linked_input_keeps_its_own_name_and_points_at_the_file(tmp_path):
    # Photo libraries keep files under hash names and show them through links named for people.
    store = tmp_path / "store" / "3f9a1c.jpg"
    store.parent.mkdir()
    store.write_bytes(b"photo")
    (tmp_path / "album").mkdir()
    (tmp_path / "album" / "holiday.jpg").symlink_to(store)
    placed = ClusterSorter(tmp_path / "sorted", ["beach"], copy=False).place(
        tmp_path / "album" / "holiday.jpg", 0
    )
    assert placed.path == tmp_path / "sorted" / "beach" / "holiday.jpg"
    assert os.readlink(placed.path) == str(store.resolve())
    again = ClusterSorter(tmp_path / "sorted", ["beach"], copy=False).place(
        tmp_path / "album" / "holiday.jpg", 0
    )
    assert again.already_there


def test_an_input_an_earlier_run_sorted_into_another_cluster_is_counted(tmp_path):
    # Another model (a retrain) sorts a photo into another cluster: it is linked there too, and
    # counted, so that the summary can say the folder now holds it twice.
    a, b = make_inputs(tmp_path / "in")
    first = ClusterSorter(tmp_path / "sorted", ["cats", "dogs"], copy=False)
    assert not first.place(a, 0).elsewhere and not first.place(b, 1).elsewhere
    again = ClusterSorter(tmp_path / "sorted", ["cats", "dogs"], copy=False)
    moved, same = again.place(a, 1), again.place(b, 1)
    assert moved.elsewhere and not moved.already_there and moved.path.parent.name == "dogs"
    assert not same.elsewhere and same.already_there
    assert (tmp_path / "sorted" / "cats" / "photo.jpg").is_symlink()  # the earlier link stays


def test_a_copy_an_earlier_run_made_in_another_cluster_is_found_by_content(tmp_path):
    a, b = make_inputs(tmp_path / "in")
    ClusterSorter(tmp_path / "sorted", ["cats", "dogs"], copy=True).place(a, 0)
    (tmp_path / "sorted" / "cats" / "other.jpg").write_bytes(b"secnd")  # b's size, other content
    again = ClusterSorter(tmp_path / "sorted", ["cats", "dogs"], copy=True)
    assert again.place(a, 1).elsewhere and not again.place(b, 1).elsewhere


def test_a_numbered_name_with_a_long_suffix_stays_within_the_limit():
    name = numbered("a." + "x" * 252, 2)
    assert name.startswith("a (2).x") and len(name.encode()) == 255


def test_a_link_an_older_version_named_after_its_file_counts_as_already_there(tmp_path):
    a, _ = make_inputs(tmp_path / "in")
    (tmp_path / "sorted" / "cats").mkdir(parents=True)
    (tmp_path / "sorted" / "cats" / "3f9a1c.jpg").symlink_to(a.resolve())  # the same file, another name
    placed = ClusterSorter(tmp_path / "sorted", ["cats", "dogs"], copy=False).place(a, 0)
    assert placed.already_there and placed.path.name == "3f9a1c.jpg"
    assert [p.name for p in (tmp_path / "sorted" / "cats").iterdir()] == ["3f9a1c.jpg"]


def test_earlier_copies_are_hashed_once_each_and_unreadable_folders_count_as_empty(tmp_path, monkeypatch):
    import gatcluster.cli.sort_into as sort_into

    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(6):  # one size for all: every earlier copy is a candidate of every input
        (inputs / f"{i}.bmp").write_bytes(bytes([i]) * 64)
    first = ClusterSorter(tmp_path / "sorted", ["cats", "dogs", "owls"], copy=True)
    for i in range(6):
        first.place(inputs / f"{i}.bmp", i % 2)
    hashed: list[Path] = []
    real_digest = sort_into.file_digest
    monkeypatch.setattr(sort_into, "file_digest", lambda path: hashed.append(path) or real_digest(path))
    real_iterdir = Path.iterdir

    def refused(path: Path):  # another user's cluster folder
        if path.name == "owls":
            raise PermissionError(13, "Permission denied", str(path))
        return real_iterdir(path)

    (tmp_path / "sorted" / "owls").mkdir()
    monkeypatch.setattr(Path, "iterdir", refused)
    again = ClusterSorter(tmp_path / "sorted", ["cats", "dogs", "owls"], copy=True)
    placed = [again.place(inputs / f"{i}.bmp", (i + 1) % 2) for i in range(6)]  # another model
    assert all(p.elsewhere and not p.already_there for p in placed)
    earlier = [p for p in hashed if p.parent.parent == tmp_path / "sorted"]
    assert len(earlier) == len(set(earlier)) == 6  # each earlier copy once, not once per input


def test_copying_after_linking_makes_a_copy(tmp_path):
    # Copies are asked for to outlive the originals: an earlier run's link is no copy.
    a, _ = make_inputs(tmp_path / "in")
    ClusterSorter(tmp_path / "sorted", ["cats"], copy=False).place(a, 0)
    placed = ClusterSorter(tmp_path / "sorted", ["cats"], copy=True).place(a, 0)
    assert not placed.already_there and not placed.path.is_symlink()
    assert placed.path.name == "photo (2).jpg" and placed.path.read_bytes() == b"first"

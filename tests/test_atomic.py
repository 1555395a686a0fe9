"""Atomic writes: the target changes only when writing completed, and no temporary file stays."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from gatcluster import atomic
from gatcluster.atomic import atomic_path, make_temp_dir, write_json_atomic, write_text_atomic
from gatcluster.data.store import write_dataset


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


def test_a_symbolic_link_is_replaced_and_what_it_pointed_at_left_alone(tmp_path):
    # Behind a link may sit a DVC cache file (cache.type symlink) that other commits share.
    (tmp_path / "cached").write_text("old")
    link = tmp_path / "model.pt"
    link.symlink_to("cached")
    write_text_atomic(link, "new")
    assert not link.is_symlink() and link.read_text() == "new"
    assert (tmp_path / "cached").read_text() == "old"
    assert atomic.file_target(tmp_path / "model.pt") == tmp_path / "model.pt"
    (tmp_path / "table.csv").symlink_to("cached")
    assert atomic.file_target(tmp_path / "table.csv") == tmp_path / "cached"  # what a user's table follows


def test_a_fifo_or_a_folder_is_refused_and_left_as_it_is(tmp_path):
    fifo, folder = tmp_path / "pipe", tmp_path / "folder"
    os.mkfifo(fifo)
    folder.mkdir()
    for target, kind in ((fifo, "not a regular file"), (folder, "a folder")):
        with pytest.raises(atomic.WriteError, match=f"cannot write {target}: it is {kind}"):
            write_text_atomic(target, "table")
    assert stat.S_ISFIFO(fifo.stat().st_mode) and folder.is_dir() and not any(folder.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "pipe"]  # no temporary left


def test_a_loop_of_links_has_no_target_to_write_through(tmp_path):
    # gat predict --out writes through a link (file_target); a loop was replaced by a file silently
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(atomic.WriteError, match="cannot write .*loop: it is a loop of symbolic links"):
        atomic.file_target(tmp_path / "loop")
    assert os.readlink(tmp_path / "loop") == "loop"


def test_another_files_error_inside_the_block_is_not_blamed_on_the_target(tmp_path):
    target, other = tmp_path / "table.csv", tmp_path / "taken"
    with pytest.raises(FileExistsError) as raised, atomic_path(target) as tmp:
        tmp.write_text("rows")
        raise FileExistsError(17, "File exists", str(other))
    assert raised.value.filename == str(other) and not target.exists()


def test_a_folder_that_cannot_be_made_or_written_is_a_write_error(tmp_path, monkeypatch):
    (tmp_path / "reports").write_text("a file where the folder should be")
    with pytest.raises(atomic.WriteError, match="cannot write .*reports/m.json: .*; no m.json was written"):
        write_text_atomic(tmp_path / "reports" / "m.json", "{}")
    write_text_atomic(tmp_path / "m.json", "old")

    def refused(parent, prefix):  # a read-only folder (root ignores modes, so the refusal is staged)
        raise PermissionError(13, "Permission denied", str(parent / prefix))

    monkeypatch.setattr(atomic, "make_temp_file", refused)
    with pytest.raises(atomic.WriteError, match="Permission denied; the previous m.json is kept"):
        write_text_atomic(tmp_path / "m.json", "new")
    assert (tmp_path / "m.json").read_text() == "old"


def test_a_name_near_the_length_limit_is_written_through_a_shorter_temporary(tmp_path):
    name = "é" * 120 + ".csv"  # 244 bytes: legal, though ".<name>-<pid>-<hex>" would not be
    write_text_atomic(tmp_path / name, "x")
    assert (tmp_path / name).read_text() == "x" and len(os.listdir(tmp_path)) == 1


def test_write_text_atomic_replaces_the_content(tmp_path):
    target = tmp_path / "a.txt"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two" and len(list(tmp_path.iterdir())) == 1


def test_write_json_atomic_writes_indented_json_with_a_final_newline(tmp_path):
    target = tmp_path / "run.json"
    write_json_atomic(target, {"run_id": "abc"})
    assert target.read_text() == '{\n  "run_id": "abc"\n}\n'


@pytest.fixture
def umask():
    """Set a umask for one test and put the old one back."""
    saved = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_get_ordinary_permissions_from_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    write_text_atomic(tmp_path / "report.txt", "x")
    assert stat.S_IMODE((tmp_path / "report.txt").stat().st_mode) == mode


def test_dataset_folders_get_ordinary_permissions(tmp_path, umask, digits_dataset):
    umask(0o022)
    write_dataset(digits_dataset, tmp_path / "dataset")
    assert stat.S_IMODE((tmp_path / "dataset").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "dataset" / "images.npy").stat().st_mode) == 0o644
    assert make_temp_dir(tmp_path, ".x-").stat().st_mode & 0o777 == 0o755


def test_no_file_mode_differs_from_the_umask_under_a_concurrent_writer(tmp_path, umask, monkeypatch):
    """Atomic writes never touch the umask, so files other threads create meanwhile keep theirs."""
    umask(0o027)
    umask_calls = []
    monkeypatch.setattr(os, "umask", umask_calls.append)
    stop = threading.Event()

    def write_atomically() -> None:
        i = 0
        while not stop.is_set():
            write_text_atomic(tmp_path / "atomic" / f"{i % 7}.txt", "x")
            make_temp_dir(tmp_path / "atomic", ".d-").rmdir()
            i += 1

    (tmp_path / "atomic").mkdir()
    (tmp_path / "plain").mkdir()
    writer = threading.Thread(target=write_atomically)
    writer.start()
    try:
        for i in range(3000):
            plain = tmp_path / "plain" / f"{i}.txt"
            plain.write_text("y")  # what a sampler or read-ahead thread does meanwhile
            assert stat.S_IMODE(plain.stat().st_mode) == 0o640, plain
    finally:
        stop.set()
        writer.join()
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "atomic").iterdir()}
    assert modes == {0o640} and umask_calls == []


def test_atomic_writes_fsync_the_file_and_its_folder_before_returning(tmp_path, monkeypatch):
    synced = []
    real_fsync_path = atomic.fsync_path
    monkeypatch.setattr(atomic, "fsync_path", lambda path: synced.append(path) or real_fsync_path(path))
    target = tmp_path / "ckpt.pt"
    with atomic_path(target) as tmp:
        tmp.write_text("weights")
    assert synced == [tmp, tmp_path]  # the data before the rename, the rename after it


def test_dataset_folders_are_fsynced_before_the_rename(tmp_path, monkeypatch, digits_dataset):
    synced = []
    monkeypatch.setattr(atomic, "fsync_path", synced.append)
    write_dataset(digits_dataset, tmp_path / "dataset")
    names = [p.name for p in synced]
    assert {"images.npy", "labels.npy", "manifest.json"} <= set(names)
    assert synced[-1] == tmp_path  # the folder that received the rename, last


def test_temporaries_left_by_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    gone = subprocess.Popen(["true"])  # its process id is free once it has been waited for
    gone.wait()
    stale_file = tmp_path / f".table.csv-{gone.pid}-abc123"
    stale_file.write_text("half")
    stale_dir = tmp_path / f".dataset-{gone.pid}-def456"
    (stale_dir / "sub").mkdir(parents=True)
    alive = tmp_path / f".table.csv-{os.getppid()}-fff000"  # a live writer's: kept
    alive.write_text("busy")
    other = tmp_path / ".table.csv-notapid"  # not ours: kept
    other.write_text("x")
    write_text_atomic(tmp_path / "table.csv", "rows")
    make_temp_dir(tmp_path, ".dataset-").rmdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["table.csv", alive.name, other.name])


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux's /proc")
def test_an_open_descriptor_is_never_a_file_to_replace(tmp_path):
    # `gat predict --out /dev/stdout >> all.csv`: the name resolves to all.csv, and a rename onto
    # it would replace what all.csv held before.
    (tmp_path / "to-stdout").symlink_to("/dev/stdout")
    (tmp_path / "plain.csv").write_text("kept\n")
    for name in ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/2", str(tmp_path / "to-stdout")):
        assert atomic.is_open_descriptor(Path(name)), name
        with pytest.raises(atomic.WriteError, match="an open descriptor .* left as it is"):
            atomic.file_target(Path(name))
    for name in (tmp_path / "plain.csv", tmp_path / "new.csv", Path("/dev/null")):
        assert not atomic.is_open_descriptor(name), name

"""The registry model cache: entries keyed by what identifies a version, published whole with a
manifest, refilled when incomplete, with ordinary permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gatcluster.tracking.model_cache import (
    MANIFEST,
    absolute_store_uri,
    entry_folder,
    fill_entry,
    is_complete,
)


def test_a_relative_sqlite_store_is_keyed_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_store_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert absolute_store_uri("http://host:5000") == "http://host:5000"
    one = entry_folder(tmp_path, "sqlite:///mlflow.db", ["gatcluster", "1", "1700000000000", "models:/m-a"])
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")  # the same text names another project's store here
    assert (
        entry_folder(tmp_path, "sqlite:///mlflow.db", ["gatcluster", "1", "1700000000000", "models:/m-a"])
        != one
    )
    # A store rebuilt under the same URI numbers another model 1 again: registered at another time.
    assert entry_folder(tmp_path, "http://h", ["gatcluster", "1", "1"]) != entry_folder(
        tmp_path, "http://h", ["gatcluster", "1", "2"]
    )


def write_model(into: Path) -> None:
    """A download as MLflow leaves it: the weights file private (0600), as onnx writes it."""
    (into / "model.onnx").write_bytes(b"graph")
    (into / "weights.data").write_bytes(b"w" * 100)
    os.chmod(into / "weights.data", 0o600)


def test_an_entry_is_published_whole_with_ordinary_permissions_and_refilled_when_incomplete(tmp_path):
    folder = tmp_path / "cache" / "models" / "abc"
    assert not is_complete(folder)
    fill_entry(folder, write_model)
    assert is_complete(folder) and (folder / MANIFEST).is_file()
    folder_mode = stat.S_IMODE(folder.stat().st_mode)
    assert stat.S_IMODE((folder / "weights.data").stat().st_mode) == folder_mode & 0o666  # not 0600
    assert [p.name for p in folder.parent.iterdir()] == ["abc"]  # no temporary folder left

    (folder / "weights.data").unlink()  # deleted by hand: the entry no longer serves
    assert not is_complete(folder)
    fill_entry(folder, write_model)
    assert is_complete(folder) and [p.name for p in folder.parent.iterdir()] == ["abc"]


def test_a_failed_download_publishes_nothing(tmp_path):
    def fail(into: Path) -> None:
        (into / "model.onnx").write_bytes(b"half")
        raise ConnectionError("lost")

    folder = tmp_path / "models" / "abc"
    with pytest.raises(ConnectionError):
        fill_entry(folder, fail)
    assert not folder.exists() and not list(folder.parent.iterdir())


def test_a_cache_that_cannot_be_written_is_an_os_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OSError):
        fill_entry(tmp_path / "file" / "models" / "abc", write_model)


def test_a_complete_entry_is_never_set_aside(tmp_path):
    folder = tmp_path / "models" / "abc"
    fill_entry(folder, write_model)
    inode = folder.stat().st_ino
    fill_entry(folder, write_model)  # a second process that found it incomplete a moment before
    assert folder.stat().st_ino == inode and is_complete(folder)

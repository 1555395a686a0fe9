"""The on-disk dataset format: round trip, manifest, checksum, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from gatcluster.data import store
from gatcluster.data.store import DatasetError, ImageDataset, read_dataset, read_manifest, write_dataset
from gatcluster.data.walk import SkippedFile


def small_dataset(labels: bool = True) -> ImageDataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 5, 4, 3), dtype=np.uint8)
    return ImageDataset(images, np.arange(6) % 2 if labels else None, ["a", "b"], "folder", "resize")


def test_round_trip_with_manifest(tmp_path):
    manifest = write_dataset(small_dataset(), tmp_path / "d")
    back = read_dataset(tmp_path / "d")
    assert np.array_equal(back.images, small_dataset().images) and back.labels.tolist() == [0, 1] * 3
    assert (
        manifest["count"] == 6 and manifest["image_shape"] == [5, 4, 3] and manifest["classes"] == ["a", "b"]
    )
    assert read_manifest(tmp_path / "d") == manifest
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_every_skipped_file_is_listed_beside_the_data_set(tmp_path):
    skipped = [SkippedFile(Path(f"imgs/broken{i}.png"), "truncated") for i in range(7)]
    skipped.append(SkippedFile(Path("imgs/two\nlines\tand a tab.png"), "not an image"))
    skipped.append(SkippedFile(Path(os.fsdecode(b"imgs/bad\xff.png")), "not an image"))
    write_dataset(small_dataset(), tmp_path / "d", skipped)
    lines = (tmp_path / "d" / store.SKIPPED_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 9 and lines[0] == "imgs/broken0.png\ttruncated"
    assert lines[-2] == "imgs/two\\nlines\\tand a tab.png\tnot an image"  # one file, one line
    assert lines[-1] == "imgs/bad\\xff.png\tnot an image"
    write_dataset(small_dataset(), tmp_path / "d")  # a fetch that skipped nothing lists nothing
    assert not (tmp_path / "d" / store.SKIPPED_FILE).exists()


def test_unlabelled_round_trip(tmp_path):
    write_dataset(small_dataset(labels=False), tmp_path / "d")
    back = read_dataset(tmp_path / "d")
    assert back.labels is None and not back.has_labels
    assert not (tmp_path / "d" / "labels.npy").exists()


def test_checksum_mismatch_is_reported(tmp_path):
    write_dataset(small_dataset(), tmp_path / "d")
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    manifest["checksum"] = "0" * 64
    (tmp_path / "d" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="checksum"):
        read_dataset(tmp_path / "d")


def test_missing_dataset_says_to_fetch(tmp_path):
    with pytest.raises(DatasetError, match="run the fetch stage"):
        read_dataset(tmp_path / "nothing")


def truncate(path: Path, size: int) -> None:
    os.truncate(path, size)


def edit_manifest(path: Path, change) -> None:
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(change(manifest)))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: truncate(d / "images.npy", 200), "cannot read .*images.npy"),  # cut short
        (lambda d: truncate(d / "images.npy", 20), "cannot read .*images.npy"),  # inside the header
        (lambda d: truncate(d / "labels.npy", 0), "cannot read .*labels.npy"),
        (lambda d: (d / "images.npy").write_bytes(os.urandom(500)), "cannot read .*images.npy"),
        (lambda d: np.save(d / "labels.npy", np.array([{}] * 6)), "cannot read .*labels.npy"),  # pickled
        (lambda d: (d / "images.npy").unlink(), "cannot read .*images.npy \\(No such file"),
        (lambda d: (d / "manifest.json").write_text("{not json"), "cannot read .*manifest.json"),
        (lambda d: (d / "manifest.json").write_text("[1, 2]"), "manifest.json is not a data set manifest"),
        (lambda d: edit_manifest(d / "manifest.json", lambda m: m | {"checksum": None}), "valid 'checksum'"),
        (
            lambda d: edit_manifest(d / "manifest.json", lambda m: m | {"classes": ["a"]}),
            "labels up to 1, .* 1 cl",
        ),
        (
            lambda d: edit_manifest(d / "manifest.json", lambda m: m | {"count": 5}),
            "where the manifest says 5",
        ),
    ],
)
@pytest.mark.parametrize("mapped", [False, True])
def test_a_damaged_data_set_is_a_clear_error(tmp_path, damage, message, mapped):
    write_dataset(small_dataset(), tmp_path / "d")
    damage(tmp_path / "d")
    with pytest.raises(DatasetError, match=f"{message}.*dvc checkout data/dataset"):
        read_dataset(tmp_path / "d", mapped=mapped)


def test_failed_rewrite_keeps_the_old_dataset(tmp_path, monkeypatch):
    write_dataset(small_dataset(), tmp_path / "d")

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(store, "save_rows", disk_full)
    with pytest.raises(OSError):
        write_dataset(small_dataset(labels=False), tmp_path / "d")
    monkeypatch.undo()
    assert read_dataset(tmp_path / "d").labels is not None  # the old, complete copy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_fit_dataset_applies_the_sources_own_rule_and_keeps_the_rest(mnist5k_dataset):
    fitted = store.fit_dataset(mnist5k_dataset, 32)
    assert mnist5k_dataset.resize_rule == "pad" and fitted.images.shape == (5000, 32, 32, 1)
    assert np.array_equal(fitted.images[:, 2:30, 2:30], mnist5k_dataset.images)  # centred, zero border
    assert fitted.images[:, :2].max() == 0 and fitted.labels is mnist5k_dataset.labels
    assert store.fit_dataset(fitted, 32).images is fitted.images  # already fitted: untouched


def test_the_manifest_records_how_image_files_were_decoded(tmp_path):
    manifest = write_dataset(small_dataset(), tmp_path / "d")
    assert manifest["preprocessing"]["jpeg_scale"] and read_dataset(tmp_path / "d").reduced_jpeg
    older = {key: value for key, value in manifest.items() if key != "preprocessing"}
    (tmp_path / "d" / store.MANIFEST).write_text(json.dumps(older))  # stored before JPEGs were reduced
    assert not read_dataset(tmp_path / "d").reduced_jpeg
    write_dataset(read_dataset(tmp_path / "d"), tmp_path / "again")  # and it stays so when rewritten
    assert "jpeg_scale" not in read_manifest(tmp_path / "again")["preprocessing"]

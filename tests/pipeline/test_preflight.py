"""Params against the data: sizes known before fetch, the fetched count, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params, ParamsError
from gatcluster.pipeline.check_stage import check_against_data
from gatcluster.pipeline.layout import ProjectLayout
from gatcluster.pipeline.preflight import (
    PreflightError,
    check_data_size,
    expected_count,
    resolve_data_root,
)


def params(**overrides) -> Params:
    return replace_params(Params(), overrides)


def test_known_sources_are_counted_before_fetch(tmp_path):
    assert expected_count(params(), tmp_path / "none", None) == (5000, "the size of mnist5k")
    assert expected_count(params(**{"data.source": "digits"}), tmp_path, None)[0] == 1797


@pytest.mark.parametrize(
    "text",
    [
        "{cut off",
        "[]",
        '{"source": "mnist5k"}',
        '{"source": "mnist5k", "image_shape": [32, 32, 1], "count": 1e400}',  # an infinite count
    ],
)
def test_a_damaged_manifest_counts_as_not_fetched(tmp_path, text):
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "manifest.json").write_text(text)
    assert expected_count(params(), tmp_path / "dataset", None) == (5000, "the size of mnist5k")


def test_the_fetched_data_counts_when_it_is_the_configured_source(tmp_path):
    (tmp_path / "manifest.json").write_text(
        json.dumps({"source": "mnist5k", "count": 123, "image_shape": [32, 32, 1]})  # as store.py writes it
    )
    assert expected_count(params(), tmp_path, None) == (123, "the fetched mnist5k data")
    other = params(**{"data.source": "digits"})
    assert expected_count(other, tmp_path, None)[0] == 1797  # a stale data set of another source
    resized = params(**{"model.backbone": "stl96"})
    assert expected_count(resized, tmp_path, None)[0] == 5000  # fetched for another input size


def test_an_image_folder_is_counted_by_its_image_files(tmp_path):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    for name in ("1.png", "2.png", "a/3.jpg", ".hidden.png", "notes.txt", "data.json"):
        (tmp_path / "imgs" / name).write_bytes(b"x")
    Image.new("L", (4, 4)).save(tmp_path / "imgs" / "scan.dat", format="PNG")  # an image by content
    folder = params(**{"data.source": "folder", "data.root": "imgs"})
    root = resolve_data_root(folder.data, tmp_path)
    assert root == tmp_path / "imgs"
    assert expected_count(folder, tmp_path / "none", root)[0] == 4  # not the text files


def test_empty_files_named_like_images_are_not_counted(tmp_path):
    # Cloud placeholders or a copy cut short: fetch skips them ("empty file"), so the check that
    # passed them let `dvc repro` set the data set aside for a fetch that then had too few images.
    (tmp_path / "imgs").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "imgs" / "real.png")
    for i in range(5):
        (tmp_path / "imgs" / f"placeholder{i}.jpg").write_bytes(b"")
    folder = params(**{"data.source": "folder", "data.root": "imgs"})
    assert expected_count(folder, tmp_path / "none", tmp_path / "imgs")[0] == 1


def test_an_image_reached_twice_through_a_link_counts_once(tmp_path):
    (tmp_path / "imgs" / "cats").mkdir(parents=True)
    (tmp_path / "imgs" / "dogs").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "imgs" / "dogs" / "d.png")
    (tmp_path / "imgs" / "cats" / "fav.png").symlink_to(tmp_path / "imgs" / "dogs" / "d.png")
    folder = params(**{"data.source": "folder", "data.root": "imgs"})
    assert expected_count(folder, tmp_path / "none", tmp_path / "imgs")[0] == 1  # as fetch reads it


def test_an_image_folder_that_cannot_be_listed_says_so(tmp_path, monkeypatch):
    (tmp_path / "imgs").mkdir()
    real_iterdir = Path.iterdir

    def refused(path: Path):  # mode 000 for a user other than root (tests may run as root)
        if path.name == "imgs":
            raise PermissionError(13, "Permission denied", str(path))
        return real_iterdir(path)

    monkeypatch.setattr(Path, "iterdir", refused)
    folder = params(**{"data.source": "folder", "data.root": "imgs"})
    count, where = expected_count(folder, tmp_path / "none", tmp_path / "imgs")
    assert count == 0 and where.endswith("imgs (unreadable folder: Permission denied)")


def test_an_image_folder_that_can_be_listed_but_not_entered_says_so(tmp_path, unenterable):
    (tmp_path / "imgs").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "imgs" / "a.png")
    unenterable("imgs")
    folder = params(**{"data.source": "folder", "data.root": "imgs"})
    count, where = expected_count(folder, tmp_path / "none", tmp_path / "imgs")
    assert count == 0 and where.endswith("imgs (unreadable folder: Permission denied)")


@pytest.mark.parametrize(
    ("overrides", "count", "message"),
    [
        ({"train.sub_batch": 64}, 63, "has 63 images, fewer than train.sub_batch \\(64\\)"),
        ({"train.sub_batch": 2}, 3, "has 3 images, not more than model.num_clusters \\(10\\)"),
        ({"train.sub_batch": 2}, 10, "has 10 images, not more than model.num_clusters \\(10\\)"),
        (  # all 150 images make each large batch: too few for 200 groups
            {"train.sub_batch": 2, "experimental.overcluster": 200},
            150,
            "has 150 images, not more than experimental.overcluster \\(200\\)",
        ),
        (
            {"train.processes": 2, "train.large_batch": 1000},
            999,
            "has 999 images, fewer than train.large_batch \\(1000\\), .* do not split evenly over "
            "train.processes \\(2\\): set train.large_batch to 998",
        ),
    ],
)
def test_too_few_images_name_the_param_to_change(overrides, count, message):
    with pytest.raises(PreflightError, match=message):
        check_data_size(params(**overrides), count, "the data")
    check_data_size(params(**overrides), 1000, "the data")  # enough: no error


def test_a_missing_or_wrong_data_root_is_a_params_error(tmp_path):
    with pytest.raises(ParamsError, match="needs data.root"):
        resolve_data_root(params(**{"data.source": "folder"}).data, tmp_path)
    with pytest.raises(ParamsError, match=f"data.root {tmp_path}/nope does not exist .*reads images there"):
        resolve_data_root(params(**{"data.source": "folder", "data.root": "nope"}).data, tmp_path)
    with pytest.raises(ParamsError, match=f"data.root {tmp_path}/nope does not exist .*data.root: null"):
        resolve_data_root(params(**{"data.source": "cifar10", "data.root": "nope"}).data, tmp_path)
    assert resolve_data_root(params(**{"data.source": "cifar10"}).data, tmp_path) is None  # downloads
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ParamsError, match=f"data.root {tmp_path}/a-file is not a folder .*offline copy"):
        resolve_data_root(params(**{"data.source": "cifar10", "data.root": "a-file"}).data, tmp_path)
    with pytest.raises(ParamsError, match="data.root is empty"):  # not the project folder itself
        resolve_data_root(params(**{"data.source": "folder", "data.root": ""}).data, tmp_path)


@pytest.mark.parametrize("source", ["folder", "cifar10", "digits"])
def test_a_data_root_that_cannot_be_looked_up_is_a_params_error(tmp_path, source):
    with pytest.raises(
        ParamsError, match="data.root ~no-such-user-here/x: no home folder is known for ~no-such"
    ):
        resolve_data_root(
            params(**{"data.source": source, "data.root": "~no-such-user-here/x"}).data, tmp_path
        )
    if source != "digits":  # a bundled source reads no folder
        too_long = "a" * 300  # one name over 255 bytes: is_dir() raises rather than answer
        # Python 3.11-3.13 raise ENAMETOOLONG from is_dir(); later versions may answer False.
        with pytest.raises(ParamsError, match="cannot be looked up \\(File name too long\\)|does not exist"):
            resolve_data_root(params(**{"data.source": source, "data.root": too_long}).data, tmp_path)


def test_an_imagenet_tree_without_its_class_folders_stops_the_check(tmp_path):
    from gatcluster.data.sources import IMAGENET_WNIDS

    tree = tmp_path / "imagenet"
    tree.mkdir()
    ten = params(**{"data.source": "imagenet10", "data.root": str(tree), "model.backbone": "imagenet128"})
    (tmp_path / "data" / "dataset").mkdir(parents=True)  # fetched from another root: fetch runs again
    (tmp_path / "data" / "dataset" / "manifest.json").write_text(
        json.dumps({"source": "imagenet10", "image_shape": [128, 128, 1], "count": 13000})
    )
    with pytest.raises(
        PreflightError, match="lacks the imagenet10 class folder\\(s\\) n02056570, .* and 5 more"
    ):
        check_against_data(ten, ProjectLayout(tmp_path))
    for wnid in IMAGENET_WNIDS["imagenet10"]:
        (tree / wnid).mkdir()
    assert (
        check_against_data(ten, ProjectLayout(tmp_path))
        == "valid (the fetched imagenet10 data: 13000 images)"
    )


def test_cuda_training_without_a_usable_gpu_stops_the_check(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PreflightError, match="train.device is cuda but no CUDA GPU is usable here"):
        check_against_data(params(**{"train.device": "cuda"}), ProjectLayout(tmp_path))
    assert check_against_data(params(**{"train.device": "auto"}), ProjectLayout(tmp_path)).startswith("valid")


def test_a_data_root_that_a_bundled_source_does_not_read_is_noted(tmp_path):
    checked = check_against_data(params(**{"data.root": "/data/cifar"}), ProjectLayout(tmp_path))
    assert checked == (
        "valid (the size of mnist5k: 5000 images); note: data.root is not read, data.source mnist5k comes"
        " with an installed package"
    )
    assert "note" not in check_against_data(params(), ProjectLayout(tmp_path))


def test_any_data_size_splits_over_processes_when_it_fills_the_large_batch():
    two = params(**{"train.processes": 2, "train.large_batch": 1000})
    for count in (998, 1000, 1001, 5001):  # even below L, or at least L: every batch splits evenly
        check_data_size(two, count, "the data")

"""The model contract: one definition written by export, read and validated by predict and info."""

from __future__ import annotations

import json
import os
import shutil
import zipfile

import onnx
import pytest

from gatcluster.data.fit import FIT_RULE
from gatcluster.serving.contract import ModelContract, ModelFileError, model_source, read_contract

NAMES = ("cat", "dog", "ship")


def test_metadata_round_trip_keeps_every_field():
    contract = ModelContract(96, 3, FIT_RULE, 3, NAMES, "folder", "abc123-dirty", "d1g3st")
    metadata = contract.to_metadata()
    assert all(key.startswith("gatcluster.") and isinstance(v, str) for key, v in metadata.items())
    assert metadata["gatcluster.color"] == "rgb" and metadata["gatcluster.resize_rule"] == FIT_RULE
    assert ModelContract.from_metadata(metadata) == contract


def test_missing_keys_are_named():
    metadata = ModelContract(32, 1, "pad", 3, NAMES).to_metadata()
    del metadata["gatcluster.resize_rule"], metadata["gatcluster.channels"]
    with pytest.raises(
        ModelFileError, match=r"m\.onnx is not a gatcluster model .*channels, gatcluster\.resize"
    ):
        ModelContract.from_metadata(metadata, "m.onnx")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gatcluster.channels": "2"}, "channels 2 is neither 1 nor 3"),
        ({"gatcluster.resize_rule": "stretch"}, "resize_rule 'stretch' is none of pad, resize"),
        ({"gatcluster.num_clusters": "4"}, "3 cluster names for 4 clusters"),
        (
            {"gatcluster.num_clusters": "0", "gatcluster.cluster_names": "[]"},
            "num_clusters 0 is not positive",
        ),
        ({"gatcluster.input_size": "thirty-two"}, "unreadable gatcluster metadata"),
        ({"gatcluster.cluster_names": "[not json"}, "unreadable gatcluster metadata"),
    ],
)
def test_damaged_values_are_refused_with_the_reason(change, message):
    metadata = {**ModelContract(32, 1, "pad", 3, NAMES).to_metadata(), **change}
    with pytest.raises(ModelFileError, match=message):
        ModelContract.from_metadata(metadata)


def test_unnamed_clusters_get_numbered_names():
    metadata = ModelContract(32, 1, "pad", 3, NAMES).to_metadata()
    metadata["gatcluster.cluster_names"] = "null"
    assert ModelContract.from_metadata(metadata).cluster_names == ("cluster 0", "cluster 1", "cluster 2")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gatcluster.input_size": "64"}, r"input image \['batch', 1, 32, 32\] for \[1, 64, 64\] images"),
        ({"gatcluster.channels": "3"}, r"input image \['batch', 1, 32, 32\] for \[3, 32, 32\] images"),
        (
            {"gatcluster.num_clusters": "5", "gatcluster.cluster_names": '["a", "b", "c", "d", "e"]'},
            r"output probs \['batch', 10\] for 5 clusters",
        ),
    ],
)
def test_metadata_that_contradicts_the_graph_is_refused_on_reading(tmp_path, trained_onnx, change, message):
    model = onnx.load(str(trained_onnx[2]))
    for prop in model.metadata_props:
        prop.value = change.get(prop.key, prop.value)
    path = tmp_path / "edited.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelFileError, match=f"the graph does not match its gatcluster metadata .*{message}"):
        read_contract(path)
    assert read_contract(trained_onnx[2]).num_clusters == 10  # the untouched export reads as before


def test_a_model_exported_before_reduced_jpeg_decoding_gets_full_decodes():
    current = ModelContract(96, 3, FIT_RULE, 3, NAMES)
    assert current.reduced_jpeg and "jpeg_scale" in current.preprocessing()
    metadata = current.to_metadata()
    older = json.loads(metadata["gatcluster.preprocessing"])
    del older["jpeg_scale"]  # what every model exported before the rule carries
    legacy = ModelContract.from_metadata({**metadata, "gatcluster.preprocessing": json.dumps(older)})
    assert not legacy.reduced_jpeg and legacy.preprocessing() == older
    assert ModelContract.from_metadata(legacy.to_metadata()) == legacy
    del metadata["gatcluster.preprocessing"]
    assert not ModelContract.from_metadata(metadata).reduced_jpeg


@pytest.mark.parametrize("damaged", ["", "{not json", "[1, 2]", "null", "[" * 100_000])
def test_a_damaged_preprocessing_record_means_full_decodes_not_an_unusable_model(damaged):
    metadata = {**ModelContract(32, 1, "pad", 3, NAMES).to_metadata(), "gatcluster.preprocessing": damaged}
    assert not ModelContract.from_metadata(metadata).reduced_jpeg


def test_deeply_nested_cluster_names_are_unreadable_metadata_not_a_crash():
    metadata = {
        **ModelContract(32, 1, "pad", 3, NAMES).to_metadata(),
        "gatcluster.cluster_names": "[" * 100_000,
    }
    with pytest.raises(ModelFileError, match="unreadable gatcluster metadata"):
        ModelContract.from_metadata(metadata)


def test_a_model_whose_name_is_not_utf8_is_read(tmp_path, trained_onnx):
    path = tmp_path / os.fsdecode(b"model-\xff.onnx")  # a Latin-1 name: ONNX Runtime took it for a TypeError
    shutil.copyfile(trained_onnx[2], path)
    assert read_contract(path).num_clusters == 10
    path.write_bytes(b"junk")
    with pytest.raises(ModelFileError, match=r"^.*model-\\xff\.onnx is not a readable ONNX model"):
        read_contract(path)


def test_a_pytorch_file_given_for_the_onnx_model_is_named_as_such(tmp_path):
    import torch

    path = tmp_path / "model.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ModelFileError, match=r"model\.pt is a PyTorch file .*give the \.onnx file"):
        read_contract(path)
    path.write_bytes(b"PK\x03\x04 not a zip after all")
    with pytest.raises(ModelFileError, match="not a readable ONNX model"):
        read_contract(path)
    # A damaged archive whose entry claims a UTF-8 name it does not have: zipfile raises a
    # UnicodeDecodeError, which only costs the hint.
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"x")
    damaged = bytearray(path.read_bytes().replace(b"archive/data.pkl", b"\xff\xfechive/data.pkl"))
    for header, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # the UTF-8 name flag, 0x800
        damaged[damaged.find(header) + flag_at + 1] |= 0x08
    path.write_bytes(bytes(damaged))
    with pytest.raises(ModelFileError, match="not a readable ONNX model"):
        read_contract(path)


def test_a_folder_a_fifo_a_missing_path_or_a_name_too_long_is_named_as_such(tmp_path):
    (tmp_path / "m.onnx").mkdir()
    with pytest.raises(ModelFileError, match="m.onnx is a folder, not a model file: give the .onnx file"):
        model_source(tmp_path / "m.onnx")
    os.mkfifo(tmp_path / "fifo.onnx")  # opening it would wait for a writer
    with pytest.raises(ModelFileError, match="fifo.onnx is not a regular file"):
        model_source(tmp_path / "fifo.onnx")
    with pytest.raises(ModelFileError, match="^model file not found: .*other.onnx$"):
        model_source(tmp_path / "other.onnx")
    (tmp_path / "a.onnx").write_bytes(b"x")
    with pytest.raises(
        ModelFileError, match=r"^model file not found: .*a.onnx/x.onnx \(.*a.onnx is a file, not"
    ):
        model_source(tmp_path / "a.onnx" / "x.onnx")
    (tmp_path / "latest.onnx").symlink_to(tmp_path / "deleted.onnx")
    with pytest.raises(ModelFileError, match="latest.onnx is a broken symlink: give the .onnx file"):
        model_source(tmp_path / "latest.onnx")
    with pytest.raises(ModelFileError, match="cannot be read \\(File name too long\\)"):
        model_source(tmp_path / ("x" * 300 + ".onnx"))  # was an OSError traceback from is_dir


def test_a_model_with_its_weights_in_a_file_beside_it_is_read(tmp_path, trained_onnx):
    # MLflow's registry stores an exported model so: model.onnx and a .data file of its weights
    model = onnx.load(str(trained_onnx[2]))
    path = str(tmp_path / "model.onnx")
    onnx.save_model(model, path, save_as_external_data=True, location="w.data")
    assert (tmp_path / "w.data").stat().st_size > 1000
    assert read_contract(tmp_path / "model.onnx").num_clusters == 10

"""ONNX export: one file, metadata round trip, ONNX Runtime equals PyTorch at batch 1 and 7."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
import torch

from gatcluster.config.params import ModelConfig
from gatcluster.data.fit import fit_images
from gatcluster.data.prepare import prepare_images
from gatcluster.data.views import clean_view
from gatcluster.model import GATCluster
from gatcluster.serving.onnx_export import (
    OUTPUT_NAMES,
    ExportMismatch,
    check_parity,
    export_onnx,
    onnx_session,
    read_metadata,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, digits_dataset):
    torch.manual_seed(0)
    model = GATCluster(ModelConfig(width_mult=0.25), in_channels=1).eval()
    path = tmp_path_factory.mktemp("onnx") / "gatcluster.onnx"
    export_onnx(model, path, 18, {"gatcluster.num_clusters": "10", "gatcluster.source": "digits"})
    images = prepare_images(fit_images(digits_dataset.images[:7], 32, "resize"), 32, True)
    return model, path, clean_view(images, True)


def test_one_self_contained_file_with_metadata(exported):
    _, path, _ = exported
    assert [p.name for p in path.parent.iterdir()] == ["gatcluster.onnx"]  # no .onnx.data, no temp
    assert read_metadata(path) == {"gatcluster.num_clusters": "10", "gatcluster.source": "digits"}
    assert [(o.domain, o.version) for o in onnx.load(str(path)).opset_import] == [("", 18)]  # as asked


@pytest.mark.parametrize("batch", [1, 7])
def test_onnx_runtime_matches_pytorch(exported, batch):
    model, path, images = exported
    diffs = check_parity(model, path, images[:batch])
    assert set(diffs) == set(OUTPUT_NAMES) and diffs["probs"] < 1e-4


def test_dynamic_batch_axis_and_output_shapes(exported):
    _, path, images = exported
    session = onnx_session(path)
    probs, att, features = session.run(list(OUTPUT_NAMES), {"image": images.numpy()})
    assert probs.shape == (7, 10) and att.shape == (7, 4, 4) and features.shape == (7, 10)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)


def test_export_is_quiet_unless_asked(tmp_path, capsys, caplog):
    # Stages log at INFO: the exporter's graph passes must not print their INFO lines there.
    model = GATCluster(ModelConfig(width_mult=0.125), in_channels=1).eval()
    caplog.set_level(logging.INFO)
    export_onnx(model, tmp_path / "quiet.onnx", 18, {})
    assert "[torch.onnx]" not in capsys.readouterr().out
    assert not [r for r in caplog.records if r.name.startswith(("onnx_ir", "onnxscript"))]
    export_onnx(model, tmp_path / "loud.onnx", 18, {}, verbose=True)
    assert "[torch.onnx]" in capsys.readouterr().out
    assert [r for r in caplog.records if r.name.startswith(("onnx_ir", "onnxscript"))]
    assert logging.getLogger("onnx_ir").level == logging.NOTSET  # levels restored


def test_a_file_of_another_opset_than_asked_for_is_never_written(tmp_path):
    model = GATCluster(ModelConfig(width_mult=0.125), in_channels=1).eval()
    # Below 18 torch's exporter cannot convert and writes 18 (params.yaml refuses it; this is the guard).
    with pytest.raises(ExportMismatch, match="the exporter wrote ONNX opset 18, not export.opset 17"):
        export_onnx(model, tmp_path / "17.onnx", 17, {})
    assert not (tmp_path / "17.onnx").exists()

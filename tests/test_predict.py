"""ONNX Runtime prediction: contract, providers, preprocessing, walking, batching."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from gatcluster.data.prepare import prepare_images
from gatcluster.data.walk import walk_files
from gatcluster.inference import predict_clusters
from gatcluster.predict import (
    DeviceError,
    ModelFileError,
    batches,
    fit_to_contract,
    open_session,
    predict_batch,
    providers_for,
    read_contract,
)


def save_digits(folder, images, prefix="d"):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        path = folder / f"{prefix}{i:04d}.png"
        Image.fromarray(img[..., 0]).save(path)
        paths.append(path)
    return paths


def test_contract_round_trip(trained_onnx):
    _, _, path = trained_onnx
    contract = read_contract(path)
    assert (contract.input_size, contract.channels, contract.num_clusters) == (32, 1, 10)
    assert contract.resize_rule == "resize" and contract.cluster_names[3] == "digit-3"


def test_missing_corrupt_and_foreign_models_are_model_file_errors(tmp_path, trained_onnx):
    with pytest.raises(ModelFileError, match="not found"):
        read_contract(tmp_path / "none.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFileError, match="not a readable ONNX model|not a gatcluster model"):
        read_contract(tmp_path / "bad.onnx")
    import onnx

    foreign = onnx.load(str(trained_onnx[2]))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    with pytest.raises(ModelFileError, match="not a gatcluster model"):
        read_contract(tmp_path / "foreign.onnx")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_cpu_provider_without_gpu_and_cuda_is_refused(trained_onnx):
    assert providers_for("auto") == ["CPUExecutionProvider"]
    with pytest.raises(DeviceError, match="no usable CUDA GPU"):
        providers_for("cuda")
    _, provider = open_session(trained_onnx[2], "auto")
    assert provider == "CPUExecutionProvider"


def test_onnx_clusters_equal_pytorch_clusters_on_digit_files(tmp_path, trained_onnx, digits_dataset):
    model, _, path = trained_onnx
    paths = save_digits(tmp_path / "digits", digits_dataset.images[:200])
    contract = read_contract(path)
    session, _ = open_session(path, "cpu")
    onnx_clusters = []
    for batch_paths, batch, skipped in batches(walk_files([tmp_path / "digits"]), contract, 64):
        assert not skipped
        onnx_clusters += [p.cluster for p in predict_batch(session, contract, batch_paths, batch)]
    images = prepare_images(digits_dataset.images[:200], 32, "resize", True)
    torch_clusters = predict_clusters(model, images, 100, True, torch.device("cpu")).tolist()
    assert onnx_clusters == torch_clusters and len(paths) == 200


def test_fit_to_contract_pads_like_training(trained_onnx):
    contract = dataclasses.replace(read_contract(trained_onnx[2]), resize_rule="pad")
    padded = fit_to_contract(np.full((28, 28, 1), 255, np.uint8), contract)
    assert padded.shape == (1, 32, 32) and padded[0, 2:30, 2:30].min() == 1.0 and padded[0, 0].max() == 0.0


def test_onnx_runtime_logs_errors_only_unless_verbose(trained_onnx):
    from gatcluster.predict import ORT_ERRORS_ONLY, ORT_VERBOSE, open_session

    quiet, _ = open_session(trained_onnx[2], "cpu")
    loud, _ = open_session(trained_onnx[2], "cpu", verbose=True)
    assert quiet.get_session_options().log_severity_level == ORT_ERRORS_ONLY
    assert loud.get_session_options().log_severity_level == ORT_VERBOSE

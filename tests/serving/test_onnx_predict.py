"""ONNX Runtime prediction: contract, providers, preprocessing, walking, batching."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from gatcluster.data.fit import FIT_RULE, fit_images
from gatcluster.data.images import load_image
from gatcluster.data.prepare import prepare_images
from gatcluster.data.sources import load_folder
from gatcluster.data.views import clean_view
from gatcluster.data.walk import walk_files
from gatcluster.serving.contract import ModelFileError, read_contract
from gatcluster.serving.onnx_predict import (
    DeviceError,
    batches,
    decode,
    model_input,
    open_session,
    predict_batch,
    providers_for,
)
from gatcluster.training.passes import predict_clusters


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
    images = prepare_images(fit_images(digits_dataset.images[:200], 32, "resize"), 32, True)
    torch_clusters = predict_clusters(model, images, 100, True, torch.device("cpu")).tolist()
    assert onnx_clusters == torch_clusters and len(paths) == 200


def test_a_file_becomes_what_training_saw_through_the_same_functions(tmp_path, trained_onnx):
    # A 28-px MNIST-like file under the "pad" rule: decoded once, padded by fit_images as fetch
    # pads the stored digits, then turned into the model input by the training clean view.
    contract = dataclasses.replace(read_contract(trained_onnx[2]), resize_rule="pad")
    digit = np.random.default_rng(0).integers(0, 256, (28, 28, 1), dtype=np.uint8)
    Image.fromarray(digit[..., 0]).save(tmp_path / "d.png")
    fitted = decode(tmp_path / "d.png", contract)
    assert (
        fitted.shape == (32, 32, 3)
        and fitted[:2].max() == 0
        and (fitted[2:30, 2:30, 0] == digit[..., 0]).all()
    )
    trained_view = clean_view(prepare_images(fit_images(digit[None], 32, "pad"), 32, True), True)
    np.testing.assert_allclose(model_input(fitted[None], contract), trained_view.numpy(), atol=1e-6)


def test_a_photo_is_decoded_as_fetch_decoded_it_or_in_full_for_an_older_model(tmp_path, trained_onnx):
    contract = dataclasses.replace(read_contract(trained_onnx[2]), resize_rule=FIT_RULE)
    rng = np.random.default_rng(2)
    pixels = np.asarray(Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((400, 300)))
    (tmp_path / "photos").mkdir()
    path = tmp_path / "photos" / "p.jpg"
    Image.fromarray(pixels).save(path, quality=90)
    stored, _ = load_folder(tmp_path / "photos", contract.input_size)
    assert np.array_equal(decode(path, contract), stored.images[0])  # 1/8 scale, as fetch decoded it
    full = fit_images(load_image(path, 3)[None], contract.input_size, FIT_RULE)[0]
    legacy = dataclasses.replace(contract, reduced_jpeg=False)  # exported before reduced decoding
    assert np.array_equal(decode(path, legacy), full) and not np.array_equal(stored.images[0], full)


def test_onnx_runtime_logs_errors_only_unless_verbose(trained_onnx):
    from gatcluster.serving.onnx_predict import ORT_ERRORS_ONLY, ORT_VERBOSE, open_session

    quiet, _ = open_session(trained_onnx[2], "cpu")
    loud, _ = open_session(trained_onnx[2], "cpu", verbose=True)
    assert quiet.get_session_options().log_severity_level == ORT_ERRORS_ONLY
    assert loud.get_session_options().log_severity_level == ORT_VERBOSE

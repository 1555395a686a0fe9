"""The trained-model file: round trip to an identical network, clear errors for bad files."""

from __future__ import annotations

import pytest
import torch

from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params
from gatcluster.model import GATCluster
from gatcluster.training.checkpoint import CheckpointError
from gatcluster.training.model_file import load_model, save_model


def test_round_trip_rebuilds_the_same_network(tmp_path):
    params = replace_params(Params(), {"model.num_clusters": 7, "data.grayscale": False})
    torch.manual_seed(0)
    model = GATCluster(params.model, in_channels=3).to(memory_format=torch.channels_last)
    save_model(model, params, tmp_path / "model.pt")
    loaded, loaded_params = load_model(tmp_path / "model.pt")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x).probs, model.eval()(x).probs, atol=1e-6)
    assert loaded_params == params and not loaded.training and loaded.in_channels == 3


def test_missing_model_says_to_train(tmp_path):
    with pytest.raises(CheckpointError, match="run the train stage"):
        load_model(tmp_path / "model.pt")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"weights": torch.zeros(2)}, "not a gatcluster model file"),
        ({"params": {}, "in_channels": [1], "model": {}}, "not a gatcluster model file"),  # was a TypeError
        ([1], "is not a gatcluster model file \\(it holds a list\\): train it again"),
    ],
)
def test_foreign_file_is_a_clear_error(tmp_path, content, message):
    torch.save(content, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path / "model.pt")


def test_a_model_whose_saved_settings_are_refused_today_says_so(tmp_path):
    params = Params()
    save_model(GATCluster(params.model, 1, params.experimental), params, tmp_path / "model.pt")
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    state["params"]["export"]["opset"] = 17  # accepted before the opset range was tightened
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="trained with settings this version refuses .*export.opset"):
        load_model(tmp_path / "model.pt")


def test_a_model_trained_with_several_heads_is_saved_and_loaded_with_one(tmp_path):
    params = replace_params(Params(), {"experimental.num_heads": 3, "experimental.overcluster": 30})
    model = GATCluster(params.model, 1, params.experimental)
    model.keep_head(1)
    save_model(model, params, tmp_path / "model.pt")
    loaded, _ = load_model(tmp_path / "model.pt")
    assert loaded.num_heads == 1 and not loaded.overcluster_heads
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x).probs, model.eval()(x).probs, atol=1e-6)

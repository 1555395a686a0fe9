"""Presets and in-place params.yaml edits: comments kept, results validated, clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from gatcluster.config.loading import load_params, replace_params
from gatcluster.config.params import Params, ParamsError
from gatcluster.config.params_edit import apply_overrides, preset_names, preset_overrides, set_values

ROOT = Path(__file__).resolve().parents[2]
PRESETS = [
    "cifar10",
    "cifar100-20",
    "faithful",
    "fashion-mnist",
    "imagenet-dogs15",
    "imagenet10",
    "mnist",
    "stl10",
]


def test_every_expected_preset_ships():
    assert preset_names() == PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_applies_to_the_project_params_and_validates(name):
    text = (ROOT / "params.yaml").read_text()
    new_text, params = apply_overrides(text, preset_overrides(name))
    assert params == replace_params(load_params(ROOT / "params.yaml"), preset_overrides(name))
    assert new_text.count("#") == text.count("#")  # every comment kept


def test_values_change_in_place_with_their_comments():
    text = "train:\n  lr: 0.002      # Adam learning rate\n  iterations: 3\naugment:\n  scale: [0.7, 1.3]\n"
    new = set_values(text, {"train.lr": 0.01, "augment.scale": [0.8, 1.2]})
    assert (
        new
        == "train:\n  lr: 0.01       # Adam learning rate\n  iterations: 3\naugment:\n  scale: [0.8, 1.2]\n"
    )
    assert yaml.safe_load(new)["train"]["lr"] == 0.01


def test_a_preset_rewrites_only_the_lines_of_its_keys():
    # Round-trip edit: every line whose key the preset does not name stays byte-identical.
    text = (ROOT / "params.yaml").read_text()
    overrides = preset_overrides("faithful")
    new_text, _ = apply_overrides(text, overrides)
    old_lines, new_lines = text.splitlines(), new_text.splitlines()
    assert len(old_lines) == len(new_lines)
    changed = [new for old, new in zip(old_lines, new_lines, strict=True) if old != new]
    leaves = {key.rsplit(".", 1)[1] for key in overrides}
    assert changed and all(line.split(":")[0].strip() in leaves for line in changed)
    width_line = "  width_mult: 1.0             # channel multiplier of the backbone (0.25 -> 16/32/64)"
    assert width_line in new_lines


def test_null_and_lists_are_written_as_the_file_spells_them():
    text = "data:\n  root: /x   # where\naugment:\n  scale: [0.7, 1.3]\n"
    new = set_values(text, {"data.root": None, "augment.scale": (0.5, 1.5)})
    assert new == "data:\n  root: null # where\naugment:\n  scale: [0.5, 1.5]\n"


def test_unknown_keys_and_presets_are_clear_errors():
    with pytest.raises(ParamsError, match="no line for train.nope"):
        set_values("train:\n  lr: 1\n", {"train.nope": 1})
    with pytest.raises(ParamsError, match="no line for nope.lr"):
        set_values("train:\n  lr: 1\n", {"nope.lr": 1})
    with pytest.raises(ParamsError, match="unknown preset 'stl-10'; available: cifar10"):
        preset_overrides("stl-10")


def test_an_invalid_result_is_rejected_before_anything_is_written():
    text = (ROOT / "params.yaml").read_text()
    with pytest.raises(ParamsError, match="data.image_size must be 96"):
        apply_overrides(text, {"model.backbone": "stl96"})


def test_faithful_preset_is_the_authors_schedule():
    params = replace_params(Params(), preset_overrides("faithful"))
    t = params.train
    assert (t.sub_batch, t.repeats, t.lr, t.lr_schedule, t.bn_reestimate) == (32, 8, 0.001, "constant", False)
    assert params.model.theta_layout == "code" and t.iterations == 6000


@pytest.mark.parametrize("name", ["faithful", "stl10", "imagenet10", "imagenet-dogs15"])
def test_paper_presets_turn_every_trainer_addition_off(name):
    on = {
        "model.num_heads": 4,
        "train.ema_decay": 0.99,
        "train.views": 2,
        "train.relations": "features",
        "augment.stroke": 0.5,
        "augment.elastic": 2,
    }
    params = replace_params(Params(), on)
    params = replace_params(params, preset_overrides(name))
    t, m = params.train, params.model
    assert (m.num_heads, m.overcluster) == (1, 0)
    assert (t.ema_decay, t.confidence, t.sinkhorn_iters, t.views, t.amp) == (0.0, 0.0, 1, 1, False)
    assert (params.augment.stroke, params.augment.elastic) == (0.0, 0.0)
    assert t.relations == "targets"


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_trains_one_iteration_on_fixture_images(name, digits_dataset):
    # Real digits, resized to the preset's input size and tinted (colour presets jitter hue);
    # the preset's model, losses and augmentation.
    from gatcluster.data.fit import fit_images
    from gatcluster.data.prepare import prepare_images
    from gatcluster.training.fit import fit

    params = replace_params(Params(), preset_overrides(name))
    small = {"train.iterations": 1, "train.large_batch": 16, "train.sub_batch": 8, "train.repeats": 1}
    small |= {
        "train.target_chunk": 16,
        "train.device": "cpu",
        "train.checkpoint_every": 0,
        "train.kmeans_n_init": 1,
    }
    params = replace_params(params, small)
    data = params.data
    tinted = (digits_dataset.images[:32] * np.array([1.0, 0.6, 0.3])).astype(np.uint8)
    images = prepare_images(fit_images(tinted, data.image_size, "resize"), data.image_size, data.grayscale)
    result = fit(params, images)
    assert len(result.history) == 1 and math.isfinite(result.history[0]["loss/total"])
    assert result.model.input_size == data.image_size

"""Presets and in-place params.yaml edits: comments kept, results validated, clear errors."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from gatcluster.config.loading import load_params, replace_params
from gatcluster.config.params import DataConfig, Params, ParamsError
from gatcluster.config.params_edit import (
    apply_overrides,
    guess_indent,
    preset_names,
    preset_overrides,
    preset_values,
    root_reset,
    set_values,
)

ROOT = Path(__file__).resolve().parents[2]
PRESETS = [
    "cifar10",
    "cifar100-20",
    "defaults",
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
    new_text, params = apply_overrides(text, preset_values(name))
    assert params == replace_params(load_params(ROOT / "params.yaml"), preset_values(name))
    assert new_text.count("#") == text.count("#")  # every comment kept


@pytest.mark.parametrize("first", PRESETS)
def test_the_defaults_preset_gives_back_the_shipped_params_yaml(first):
    # The way back from any preset, without git: the file as shipped, comments and all.
    text = (ROOT / "params.yaml").read_text()
    after_first, _ = apply_overrides(text, preset_values(first))
    back, params = apply_overrides(after_first, preset_values("defaults"))
    assert back == text and params == Params()


@functools.cache
def preset_alone(name: str) -> tuple[str, Params]:
    """The shipped params.yaml with preset `name` applied, text and params (each an edit of
    about 50 ms, asked 9 times per preset by the test below)."""
    return apply_overrides((ROOT / "params.yaml").read_text(), preset_values(name))


@pytest.mark.parametrize("first", PRESETS)
def test_presets_are_complete_so_their_order_does_not_matter(first):
    # Applying A then B equals applying B alone, for every pair: in the params and in the file
    # (which DVC compares: an `experimental` block left spelled out would be a changed param).
    after_first, _ = preset_alone(first)
    for second in PRESETS:
        alone_text, alone = preset_alone(second)
        both_text, both = apply_overrides(after_first, preset_values(second))
        assert both == alone and both_text == alone_text, (first, second)


def test_a_preset_keeps_the_keys_no_preset_decides():
    text = set_values((ROOT / "params.yaml").read_text(), {"train.processes": 2, "train.device": "cpu"})
    _, params = apply_overrides(text, preset_values("mnist"))
    assert (params.train.processes, params.train.device) == (2, "cpu")


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
    overrides = preset_values("mnist")
    new_text, _ = apply_overrides(text, overrides)
    old_lines, new_lines = text.splitlines(), new_text.splitlines()
    assert len(old_lines) == len(new_lines)  # mnist changes nothing in the experimental block
    changed = [new for old, new in zip(old_lines, new_lines, strict=True) if old != new]
    leaves = {key.rsplit(".", 1)[1] for key in overrides}
    assert changed and all(line.split(":")[0].strip() in leaves for line in changed)
    assert any(line.startswith("  source: mnist  ") and "# mnist5k|digits" in line for line in new_lines)


def test_a_key_the_file_does_not_list_is_added_only_when_it_differs_from_its_default():
    text = "train:\n  lr: 1\n"
    assert set_values(text, {"experimental.relations": "spectral"}) == text
    added = set_values(text, {"experimental.relations": "targets", "experimental.bn_reestimate": True})
    assert yaml.safe_load(added) == {"train": {"lr": 1}, "experimental": {"relations": "targets"}}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# only a comment\n",
        "data:\n  # source: digits\nmodel:\n",
        "null\n",
        "~\n",
        "# only a comment\nnull\n",
    ],
)  # `null` and `~` read as empty, as gat check reads them; they were kept above the new keys
def test_an_empty_file_or_section_takes_the_values_instead_of_dropping_them(text):
    new, params = apply_overrides(text, preset_values("stl10"))
    assert params.data.source == "stl10" and params.model.backbone == "stl96"
    assert new.startswith("# only a comment\n") or not text.startswith("#")  # its comments stay


@pytest.mark.parametrize(
    ("head", "tail"),
    [
        ("# the team's settings\n# reviewed monthly\n---\n", ""),
        ("%YAML 1.2\n--- # params\n", ""),
        ("", "...\n# notes after the document\n"),
        ("---\n", "...\n"),
        ("\ufeff# saved with a byte order mark\n---\n", ""),
    ],
)
def test_document_markers_and_the_comments_around_them_stay(head, tail):
    # ruamel drops what stands before `---` and after `...` on a round trip.
    text = head + (ROOT / "params.yaml").read_text() + tail
    new_text, params = apply_overrides(text, preset_values("stl10"))
    assert params.data.source == "stl10"
    assert new_text.startswith(head) and new_text.endswith(tail)
    assert new_text.count("#") == text.count("#")


@pytest.mark.parametrize(
    ("source", "root", "new_source", "reset"),
    [
        ("folder", "/photos", "cifar10", True),  # an image folder is no offline copy
        ("folder", "/photos", "imagenet10", True),
        ("cifar10", "/mirror", "imagenet10", True),
        ("mnist5k", "/photos", "cifar10", True),  # a root nothing read: no copy either
        ("cifar10", "/mirror", "cifar100-20", False),  # one folder of torchvision copies
        ("imagenet10", "/train", "imagenet-dogs15", False),  # one ImageNet train tree
        ("folder", "/photos", "mnist5k", False),  # read by nothing there: kept for later
        ("folder", None, "cifar10", False),
    ],
)
def test_a_root_is_reset_only_for_a_source_reading_another_kind(source, root, new_source, reset):
    data = DataConfig(source=source, root=root)
    assert root_reset(data, new_source) == ({"data.root": None} if reset else {})


def test_a_params_file_rewritten_by_dvc_exp_run_takes_a_preset():
    # `dvc exp run -S` writes lists as blocks, the key's comment before the first item, and null as
    # nothing: an inline list put there carried the comment into the next key's line.
    text = (ROOT / "params.yaml").read_text().replace("root: null", "root:")
    line = next(s for s in text.splitlines() if s.startswith("  scale: [0.7, 1.3]"))
    text = text.replace(line, line.replace("[0.7, 1.3]", "          ") + "\n  - 0.7\n  - 1.3")
    new_text, params = apply_overrides(text, preset_values("stl10"))
    assert params.augment.scale == (0.8, 1.2) and params.data.source == "stl10"
    assert new_text.count("#") == text.count("#")


def test_a_preset_after_dvc_exp_run_changes_only_the_lines_of_the_values_it_changes(tmp_path):
    from dvc.utils.hydra import apply_overrides as dvc_set  # what `dvc exp run -S` does to the file

    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    dvc_set(str(path), ["augment.scale=[0.6,1.4]"])  # block list, dashes at the key's column, `root:`
    text = path.read_text()
    new_text, params = apply_overrides(text, preset_values("fashion-mnist"))
    assert params.augment.scale == (0.7, 1.3) and params.data.source == "fashion-mnist"
    changed = {(a, b) for a, b in zip(text.splitlines(), new_text.splitlines(), strict=True) if a != b}
    assert {a.split("#")[0].strip() for a, _ in changed} == {
        "source: mnist5k",
        "flip: false",
        "- 0.6",
        "- 1.4",
    }
    assert {b.split("#")[0].strip() for _, b in changed} == {
        "source: fashion-mnist",
        "flip: true",
        "- 0.7",
        "- 1.3",
    }


@pytest.mark.parametrize(
    ("text", "indent"),
    [
        ("a: 1\n", (2, 2)),  # nothing nested: the project's layout
        ("augment:\n  scale:\n  - 0.6\n", (2, 0)),  # dvc exp run -S: dashes at the key's column
        ("augment:\n    scale:\n      - 0.6\n", (4, 2)),
        ("note: |\n    a: b\ndata:\n  source: x\n", (2, 2)),  # a block scalar's text is no key
        ("hooks:\n- name: a\n  cmd: b\ndata:\n    source: x\n", (4, 0)),  # a list of mappings first
        ("# top: comment\ndata:      # c\n   # x: y\n   root:\n", (3, 2)),  # comments are no keys
    ],
)
def test_the_indentation_of_params_yaml_is_read_from_its_nested_keys(text, indent):
    assert guess_indent(text) == indent


def test_a_hand_written_experimental_block_keeps_its_comments_and_place():
    text = (
        "experimental:\n  relations: targets\n  # theta as the authors' code reads it\n"
        "  theta_layout: code\n  bn_reestimate: false\n\n# --- evaluation ---\nevaluate:\n"
        "  attention_samples: 32\n"
    )
    for overrides in (
        {},
        {"experimental.neighbours": 0},  # added in sorted place among the keys
        {"experimental.relations": "spectral", "experimental.bn_reestimate": True},  # to defaults
    ):
        new_text = set_values(text, overrides)
        assert "# theta as the authors' code reads it" in new_text
        assert "\n\n# --- evaluation ---\nevaluate:\n" in new_text, new_text
        assert yaml.safe_load(new_text)["evaluate"] == {"attention_samples": 32}


def test_null_and_lists_are_written_as_the_file_spells_them():
    text = "data:\n  root: /x   # where\naugment:\n  scale: [0.7, 1.3]\n"
    new = set_values(text, {"data.root": None, "augment.scale": (0.5, 1.5)})
    assert new == "data:\n  root: null # where\naugment:\n  scale: [0.5, 1.5]\n"


@pytest.mark.parametrize("values", [[0.8, 1.2], [0.8, 1.2, 1.4]])
def test_a_block_list_keeps_its_item_comments_and_the_lines_after_it(values):
    # As `dvc exp run -S` writes lists; the blank line and comment before the next key belong, for
    # ruamel, to the list's last item.
    after = "\n# ---- evaluation ----\nevaluate:\n  batch_size: 500\n"
    new = set_values("augment:\n  scale:\n  - 0.9   # low\n  - 1.1\n" + after, {"augment.scale": values})
    items = "".join(f"  - {v}{'   # low' if i == 0 else ''}\n" for i, v in enumerate(values))
    assert new == f"augment:\n  scale:\n{items}{after}"


@pytest.mark.parametrize("null", [" ~", " null", ""])
def test_nulls_keep_the_files_spelling_and_commented_lines_do_not_count(null):
    # The commented-out line, as DVC leaves them, spells null; the file's own nulls decide.
    text = f"# data:\n#   root: null\ndata:\n  root:{null}\n  source: mnist5k\nmlflow:\n  experiment: mine\n"
    new = set_values(text, {"data.source": "stl10"})
    assert new == text.replace("source: mnist5k", "source: stl10")  # untouched nulls stay as spelled
    new = set_values(text, {"mlflow.experiment": None})
    assert new == text.replace("experiment: mine", f"experiment:{null}")


def test_unknown_keys_and_presets_are_clear_errors():
    with pytest.raises(ParamsError, match="unknown key train.nope"):
        apply_overrides("train:\n  lr: 1\n", {"train.nope": 1})
    with pytest.raises(ParamsError, match="unknown key nope"):
        apply_overrides("train:\n  lr: 1\n", {"nope.lr": 1})
    with pytest.raises(
        ParamsError, match=r"unknown preset 'stl-10' \(did you mean stl10\?\); available: cifar10"
    ):
        preset_overrides("stl-10")


def test_an_invalid_result_is_rejected_before_anything_is_written():
    text = (ROOT / "params.yaml").read_text()
    with pytest.raises(ParamsError, match=r"train.sub_batch \(2000\) must be <= train.large_batch"):
        apply_overrides(text, {"train.sub_batch": 2000})


def test_faithful_preset_is_the_authors_schedule():
    params = replace_params(Params(), preset_values("faithful"))
    t, x = params.train, params.experimental
    assert (t.sub_batch, t.repeats, t.lr, t.lr_schedule, x.bn_reestimate) == (32, 8, 0.001, "constant", False)
    assert x.theta_layout == "code" and t.iterations == 6000


@pytest.mark.parametrize(
    "name", ["faithful", "stl10", "imagenet10", "imagenet-dogs15", "cifar10", "cifar100-20"]
)
def test_paper_presets_turn_every_trainer_addition_off(name):
    on = {
        "experimental.num_heads": 4,
        "experimental.overcluster": 50,
        "experimental.relations": "spectral",
        "experimental.neighbours": 5,
    }
    params = replace_params(replace_params(Params(), on), preset_values(name))
    x = params.experimental
    assert (x.num_heads, x.overcluster, x.relations, x.bn_reestimate) == (1, 0, "targets", False)
    assert x.neighbours == 0
    assert params.train.amp is False


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_trains_one_iteration_on_fixture_images(name, digits_dataset):
    # Real digits, resized to the preset's input size and tinted (colour presets jitter hue);
    # the preset's model, losses and augmentation.
    from gatcluster.data.fit import fit_images
    from gatcluster.data.prepare import prepare_images
    from gatcluster.training.fit import fit

    params = replace_params(Params(), preset_values(name))
    batch = max(16, params.model.num_clusters + 4)  # more images than clusters in each large batch
    small = {"train.iterations": 1, "train.large_batch": batch, "train.sub_batch": 8, "train.repeats": 1}
    small |= {
        "experimental.target_chunk": batch,
        "train.device": "cpu",
        "train.checkpoint_every": 0,
        "experimental.kmeans_n_init": 1,
    }
    params = replace_params(params, small)
    size, grey = params.model.input_size, params.data.grayscale
    tinted = (digits_dataset.images[:32] * np.array([1.0, 0.6, 0.3])).astype(np.uint8)
    images = prepare_images(fit_images(tinted, size, "resize"), size, grey)
    result = fit(params, images)
    assert len(result.history) == 1 and math.isfinite(result.history[0]["loss/total"])
    assert result.model.input_size == size

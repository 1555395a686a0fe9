"""params.yaml -> frozen dataclasses: defaults agree, bad values stop before any work."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from gatcluster.config.loading import (
    load_params,
    params_from_dict,
    params_from_text,
    parse_overrides,
    replace_params,
    saved_params_from_dict,
)
from gatcluster.config.params import (
    STAGE_PARAMS,
    ExperimentalConfig,
    LossWeights,
    Params,
    ParamsError,
    flatten_params,
    params_to_dict,
)

ROOT = Path(__file__).resolve().parents[2]


def test_project_params_yaml_equals_the_dataclass_defaults():
    assert load_params(ROOT / "params.yaml") == Params()


@pytest.mark.parametrize(
    ("overrides", "hint"),
    [
        ({"train.lrr": 0.1}, "unknown key train.lrr (did you mean train.lr?): allowed keys in train are"),
        ({"trian.lr": 0.1}, "unknown key trian (did you mean train?): allowed keys in params are"),
        ({"model.num_cluster": 5}, "(did you mean model.num_clusters?)"),
        ({"train.zzz": 1}, "unknown key train.zzz: allowed keys in train are"),  # nothing close
    ],
)
def test_a_mistyped_key_is_answered_with_the_closest_one(overrides, hint):
    with pytest.raises(ParamsError) as err:
        replace_params(Params(), overrides)
    assert hint in str(err.value)


def test_params_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Params().train.lr = 1.0  # type: ignore[misc]


def test_flat_names_are_the_dotted_params_keys():
    flat = flatten_params(Params())
    assert flat["train.lr"] == Params().train.lr
    assert flat["train.loss_weights.invariance"] == 5.0 and flat["augment.scale"] == [0.7, 1.3]
    assert "train" not in flat


def test_dict_round_trip_and_overrides():
    params = replace_params(Params(), {"train.lr": 0.01, "augment.scale": [0.9, 1.1], "seed": 3})
    assert params.train.lr == 0.01 and params.augment.scale == (0.9, 1.1) and params.seed == 3
    assert params_from_dict(params_to_dict(params)) == params


def test_integers_are_accepted_where_numbers_are_expected():
    assert replace_params(Params(), {"train.lr": 1}).train.lr == 1.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.lr_rate": 0.1}, "unknown key train.lr_rate"),
        ({"trian.lr": 0.1}, "unknown key trian"),
        ({"train.lr": "fast"}, "train.lr must be a number"),
        ({"train.iterations": 2.5}, "train.iterations must be an integer"),
        ({"train.amp": "yes"}, "train.amp must be true or false"),
        ({"train.lr": 0}, "train.lr must be > 0"),
        ({"train.iterations": 0}, "train.iterations must be >= 1"),
        ({"augment.brightness": 2}, "augment.brightness must be <= 1"),
        ({"train.device": "gpu"}, "train.device must be one of auto, cpu, cuda"),
        ({"experimental.theta_layout": "x"}, "experimental.theta_layout must be one of paper, code"),
        ({"augment.scale": [1.2, 0.8]}, r"augment.scale must be a pair \[low, high\]"),
        ({"data.image_size": 28}, "data.image_size is no longer set: the backbone fixes the input size"),
        ({"train.sub_batch": 2000}, r"train.sub_batch \(2000\) must be <= train.large_batch"),
        (
            {"experimental.neighbours": 1000},
            r"experimental.neighbours \(1000\) must be < train.large_batch \(1000\)",
        ),
        ({"train": 3}, "train must be a mapping"),
        ({"data.root": "a\0b"}, r"data.root must be a path a file system can hold, got 'a\\x00b'"),
        ({"data.root": "\ud800x"}, r"data.root must be a path a file system can hold, got '\\ud800x'"),
        ({"train.processes": 3}, r"train.large_batch \(1000\) must be a multiple of train.processes \(3\)"),
        ({"train.processes": 0}, "train.processes must be >= 1"),
        ({"train.lr": float("nan")}, "train.lr must be a finite number, got nan"),  # passes every range check
        ({"augment.brightness": float("-inf")}, "augment.brightness must be a finite number"),
        ({"augment.scale": [0.8, float("inf")]}, r"augment.scale must be a pair \[low, high\]"),
        ({"augment.scale": [0.001, 0.001]}, r"with 0.1 <= low <= high <= 10.0"),  # a blank view
        ({"experimental.kmeans_n_init": 10**9}, "experimental.kmeans_n_init must be <= 100"),  # 80 GB
        ({"export.opset": 17}, "export.opset must be >= 18"),  # the exporter wrote 18 unasked
        (
            {"model.num_clusters": 1000, "train.large_batch": 300},
            r"model.num_clusters \(1000\) must be less than train.large_batch \(300\)",
        ),
        (
            {"experimental.overcluster": 500, "train.large_batch": 400, "train.sub_batch": 100},
            r"experimental.overcluster \(500\) must be less than train.large_batch \(400\)",
        ),
        (
            {f"train.loss_weights.{f.name}": 0 for f in dataclasses.fields(LossWeights)},
            "train.loss_weights are all 0: nothing would be trained",
        ),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(overrides, message):
    with pytest.raises(ParamsError, match=message):
        replace_params(Params(), overrides)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("seed: 010\n", 10),  # YAML 1.1 (PyYAML): octal 8
        ("seed: 0o10\n", 8),
        ("seed: 1_000\n", 1000),
        ("train:\n  <<: {lr: 0.003}\n", 0.003),  # a merge key
    ],
)
def test_params_yaml_is_read_as_dvc_reads_it(tmp_path, text, expected):
    from dvc.utils.serialize import parse_yaml

    dvc_value = parse_yaml(text, "params.yaml")
    read = params_from_text(text)
    ours = read.seed if text.startswith("seed") else read.train.lr
    assert ours == expected and (dvc_value.get("seed") or dvc_value["train"]["lr"]) == expected


def test_an_override_through_a_value_is_refused_not_a_type_error():
    with pytest.raises(ParamsError, match="train.lr.x: train.lr is a value, not a section"):
        replace_params(Params(), {"train.lr.x": 1})
    with pytest.raises(ParamsError, match="train.lr: train is a value, not a section"):
        replace_params(Params(), {"train": 1, "train.lr": 0.1})


def test_set_overrides_read_values_as_params_yaml_reads_them():
    got = parse_overrides(["seed=010", "train.amp=yes", "augment.scale=[0.6,1.4]", "data.root=", " lr =1e-3"])
    assert got == {"seed": 10, "train.amp": "yes", "augment.scale": [0.6, 1.4], "data.root": None, "lr": 1e-3}
    with pytest.raises(ParamsError, match="'train.lr' is not KEY=VALUE"):
        parse_overrides(["train.lr"])
    with pytest.raises(ParamsError, match="augment.scale: the value is not valid YAML"):
        parse_overrides(["augment.scale=[0.6"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  amp: yes\n", "train.amp must be true or false, got 'yes'"),  # YAML 1.1: true
        ("augment:\n  degrees: 1:30\n", "augment.degrees must be a number, got '1:30'"),  # 1.1: 90
        ("train:\n  lr: " + "9" * 400 + "\n", "train.lr must be a finite number, got 9{77}\\.\\.\\.$"),
        ("augment:\n  scale: [1, " + "9" * 400 + "]\n", "augment.scale must be a pair"),
        (
            "augment:\n  degrees: " + "9" * 5000 + "\n",
            "not valid YAML \\(Exceeds the limit \\(4300 digits\\)",
        ),
        ("experimental: " + "[" * 600 + "]" * 600 + "\n", "not valid YAML \\(nested too deeply\\)"),
        ("? [a]\n: 1\nzz: 2\n", "unknown key \\('a',\\)"),  # keys that are not strings
        ("? {a: 1}\n: 1\n", "not valid YAML \\(line 1, column 3: found unhashable key\\)"),
        ("mlflow:\n  experiment: '  '\n", "mlflow.experiment must be a name of at most 500 characters"),
        ("mlflow:\n  experiment: ''\n", "mlflow.experiment must be a name"),
        ("mlflow:\n  experiment: " + "e" * 501 + "\n", "mlflow.experiment must be a name"),
    ],
)
def test_values_yaml_reads_oddly_are_one_line_errors(text, message):
    with pytest.raises(ParamsError, match=message):
        params_from_text(text)


def test_tracking_names_are_checked_in_params_yaml_not_in_what_a_model_saved():
    saved = params_to_dict(Params())
    saved["mlflow"]["experiment"] = "digits run "  # MLflow took it; the model must still load
    assert saved_params_from_dict(saved).mlflow.experiment == "digits run "
    with pytest.raises(ParamsError, match="mlflow.experiment must be a name"):
        params_from_text("mlflow:\n  experiment: 'digits run '\n")


def test_a_yaml_error_is_one_short_line():
    text = "train:\n  x: |\n    a\n    b\n  x: |\n    " + "c" * 3000 + "\n"
    with pytest.raises(ParamsError) as raised:
        params_from_text(text)
    assert "\n" not in str(raised.value) and len(str(raised.value)) < 300, str(raised.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(
        ParamsError, match=r"a-file/params.yaml not found \(.*a-file is a file, not a folder\)$"
    ):
        load_params(tmp_path / "a-file" / "params.yaml")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "moved.yaml")
    with pytest.raises(ParamsError, match="link.yaml is a broken symlink$"):
        load_params(tmp_path / "link.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("")
    assert load_params(bad) == Params()  # an empty file means all defaults
    bad.write_text("train:\n  lr: 0.002\n  iterations: 5\n  lr: 0.01\n")
    with pytest.raises(ParamsError, match=r"line 4, column 3: found duplicate key \"lr\""):
        load_params(bad)
    bad.write_text("train:\n  lr: 1e-3\naugment:\n  scale: [7e-1, 1.3E+0]\n")  # YAML 1.2 floats, as in DVC
    assert load_params(bad).train.lr == 0.001 and load_params(bad).augment.scale == (0.7, 1.3)
    bad.write_bytes("# caf\u00e9\ntrain:\n  lr: 0.002\n".encode("latin-1"))
    with pytest.raises(ParamsError, match=r"params.yaml is not UTF-8 text \(byte 0xe9 at offset 5\)"):
        load_params(bad)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"experimental.overcluster": 10}, r"experimental.overcluster must be 0 \(off\) or more than model"),
        ({"experimental.num_heads": 0}, "experimental.num_heads must be >= 1"),
        ({"experimental.relations": "pixels"}, "experimental.relations must be one of targets, features"),
        ({"train.ema_decay": 0.9}, "train.ema_decay was removed"),
        ({"train.relations": "targets"}, "train.relations is now experimental.relations"),
    ],
)
def test_trainer_switches_are_validated(overrides, message):
    with pytest.raises(ParamsError, match=message):
        replace_params(Params(), overrides)


@pytest.mark.parametrize("name", ["", "  ", "a/b", "models:x", "a?b", "x\ny", " gat", "gat\t"])
def test_a_registered_model_name_that_breaks_models_uris_is_refused(name):
    with pytest.raises(ParamsError, match="export.registered_model must be a name without"):
        replace_params(Params(), {"export.registered_model": name})


def test_hue_on_a_greyscale_source_is_refused_not_ignored():
    with pytest.raises(
        ParamsError, match="augment.hue .* data.source mnist5k is greyscale: set augment.hue: 0"
    ):
        replace_params(Params(), {"augment.hue": 0.1})
    assert replace_params(Params(), {"augment.hue": 0.1, "data.source": "cifar10"}).augment.hue == 0.1


def test_each_stage_logs_exactly_the_params_dvc_yaml_gives_it():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage, sections in STAGE_PARAMS.items():
        assert tuple(stages[stage]["params"]) == sections, stage
    flat = flatten_params(Params(), STAGE_PARAMS["export"])
    assert flat == {"export.opset": 18, "export.registered_model": "gatcluster"}
    assert "train.lr" in flatten_params(Params(), STAGE_PARAMS["train"])
    assert not any(k.startswith("evaluate.") for k in flatten_params(Params(), STAGE_PARAMS["train"]))


def test_saved_params_count_missing_additions_as_off():
    saved = params_to_dict(Params())
    del saved["experimental"]["relations"], saved["experimental"]["num_heads"]
    del saved["experimental"]["neighbours"]
    restored = saved_params_from_dict(saved)
    assert restored.experimental.relations == "targets" and restored.experimental.num_heads == 1
    assert restored.experimental.neighbours == 0
    assert params_from_dict(saved).experimental.relations == "spectral"  # plain loading: today's default
    complete = params_to_dict(replace_params(Params(), {"experimental.relations": "spectral"}))
    assert saved_params_from_dict(complete) == Params()  # named keys are kept as saved


def test_params_saved_by_the_previous_version_load_with_moved_and_removed_keys():
    saved = params_to_dict(Params())
    old = saved.pop("experimental")
    saved["data"]["image_size"] = 32
    saved["train"].update(
        relations=old["relations"], bn_reestimate=True, target_chunk=200, ema_decay=0.0, views=1, candidates=1
    )
    saved["model"].update(theta_layout="paper", att_lambda=0.05, num_heads=1, overcluster=0)
    saved["augment"].update(stroke=0.0, elastic=0.0)
    # That version had no neighbour targets: its runs trained without them.
    assert saved_params_from_dict(saved) == replace_params(Params(), {"experimental.neighbours": 0})
    saved["train"]["ema_decay"] = 0.99  # a trainer this version no longer has
    with pytest.raises(ParamsError, match=r"trained with train.ema_decay=0.99"):
        saved_params_from_dict(saved)


def test_params_yaml_lists_at_most_40_keys_and_an_empty_experimental_block():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())

    def leaves(node: dict) -> int:
        return sum(leaves(v) if isinstance(v, dict) else 1 for v in node.values())

    assert leaves(raw) <= 40
    assert raw["experimental"] == {}  # listed empty (DVC tracks the block): every key at its default
    assert load_params(ROOT / "params.yaml").experimental == ExperimentalConfig()


def test_a_params_file_that_cannot_be_read_is_one_line(tmp_path, monkeypatch):
    from gatcluster.config.loading import read_params_text

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    params = tmp_path / "params.yaml"
    params.write_text("seed: 0\n")
    monkeypatch.setattr(Path, "read_text", refused)  # as for a file of another user's, mode 600
    with pytest.raises(ParamsError, match=r"cannot read .*params\.yaml: Permission denied"):
        read_params_text(params)

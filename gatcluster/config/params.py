"""Settings: the params schema (frozen dataclasses, one per params.yaml block) and its plain-dict form.

`loading.py` builds `Params` from YAML or a mapping; unknown keys, wrong types and out-of-range
values raise `ParamsError` naming the key and what is allowed, before any work starts. The
dataclass field names are the params.yaml keys, so one name holds end to end (`train.lr` =
`TrainConfig.lr` = MLflow param `train.lr`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# What data.root names for each source. Sources of one kind can share a root (one folder of
# torchvision-layout copies holds CIFAR-10 and CIFAR-100; one ImageNet train tree holds both
# subsets); the bundled sources read none.
DATA_ROOT_KINDS = {
    "mnist5k": None,
    "digits": None,
    "mnist": "offline copy",
    "fashion-mnist": "offline copy",
    "cifar10": "offline copy",
    "cifar100-20": "offline copy",
    "stl10": "offline copy",
    "imagenet10": "ImageNet train tree",
    "imagenet-dogs15": "ImageNet train tree",
    "folder": "image folder",
}
SOURCES = tuple(DATA_ROOT_KINDS)
# The params each pipeline stage uses (its `params:` in dvc.yaml) and logs to its MLflow run.
STAGE_PARAMS = {
    "train": ("seed", "data", "model", "train", "augment", "experimental", "mlflow"),
    "evaluate": ("seed", "evaluate"),
    "export": ("export",),
}
# Sources published in greyscale: colour jitter (hue) has no colour to act on there.
GREYSCALE_SOURCES = ("mnist5k", "digits", "mnist", "fashion-mnist")
BACKBONES = ("small32", "stl96", "imagenet128")
BACKBONE_INPUT_SIZE = {"small32": 32, "stl96": 96, "imagenet128": 128}
# The label-free additions to the paper's trainer at their "off" values: the trainer before them.
ADDITIONS_OFF = {
    "train.amp": False,  # on the CPU the earlier trainer ran in float32 whatever train.amp said
    "experimental.num_heads": 1,
    "experimental.overcluster": 0,
    "experimental.relations": "targets",
    "experimental.neighbours": 0,
}
# Keys of earlier versions, now in the experimental block (a checkpoint's params still load).
MOVED_KEYS = {
    "model.theta_layout": "experimental.theta_layout",
    "model.att_lambda": "experimental.att_lambda",
    "model.num_heads": "experimental.num_heads",
    "model.overcluster": "experimental.overcluster",
    "train.relations": "experimental.relations",
    "train.bn_reestimate": "experimental.bn_reestimate",
    "train.target_chunk": "experimental.target_chunk",
    "train.kmeans_n_init": "experimental.kmeans_n_init",
    "train.guard_min_ratio": "experimental.guard_min_ratio",
    "train.sync_batchnorm": "experimental.sync_batchnorm",
}
# Switches screened and removed (docs/experiments.md), at the value that meant "off": params saved
# with them off still load; any other value names a trainer this version no longer has.
REMOVED_KEYS = {
    "train.ema_decay": 0.0,
    "train.confidence": 0.0,
    "train.sinkhorn_iters": 1,
    "train.views": 1,
    "train.candidates": 1,
    "train.candidate_iterations": None,  # only meaningful with candidates > 1
    "train.resample_aug_per_repeat": False,
    "augment.stroke": 0.0,
    "augment.elastic": 0.0,
}


class ParamsError(ValueError):
    """A params value is unknown, of the wrong type or out of range."""


def _choices(*values: str) -> dict:
    return {"choices": values}


def _range(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> dict:
    return {"min": lo, "max": hi, "min_open": lo_open}


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and the model input they are fitted to."""

    source: str = field(default="mnist5k", metadata=_choices(*SOURCES))
    root: str | None = None
    grayscale: bool = True


@dataclass(frozen=True)
class ModelConfig:
    """Backbone and Gaussian-attention head (docs/method.md §2)."""

    backbone: str = field(default="small32", metadata=_choices(*BACKBONES))
    width_mult: float = field(default=0.25, metadata=_range(0.0, 8.0, lo_open=True))
    num_clusters: int = field(default=10, metadata=_range(2, 1000))
    fea_dim: int | None = field(default=None, metadata=_range(2, 4096))

    @property
    def input_size(self) -> int:
        """The side of the model input in pixels: the backbone's (data is fitted to it at fetch)."""
        return BACKBONE_INPUT_SIZE[self.backbone]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the five loss terms (docs/method.md §3: 5 / 3 / 3 / 1 / 5)."""

    invariance: float = field(default=5.0, metadata=_range(0.0))
    entropy: float = field(default=3.0, metadata=_range(0.0))
    entropy_att: float = field(default=3.0, metadata=_range(0.0))
    separability: float = field(default=1.0, metadata=_range(0.0))
    attention: float = field(default=5.0, metadata=_range(0.0))


# What train.device cuda without a usable GPU says: the check stage and fit stop on it alike.
NO_CUDA_MESSAGE = "train.device is cuda but no CUDA GPU is usable here: use auto or cpu"


@dataclass(frozen=True)
class TrainConfig:
    """The two-step trainer (docs/method.md §4)."""

    device: str = field(default="auto", metadata=_choices("auto", "cpu", "cuda"))
    processes: int = field(default=1, metadata=_range(1, 1024))
    iterations: int = field(default=200, metadata=_range(1))
    large_batch: int = field(default=1000, metadata=_range(2))
    sub_batch: int = field(default=128, metadata=_range(2))
    repeats: int = field(default=2, metadata=_range(1))
    lr: float = field(default=2e-3, metadata=_range(0.0, 10.0, lo_open=True))
    lr_schedule: str = field(default="cosine", metadata=_choices("constant", "cosine"))
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    checkpoint_every: int = field(default=10, metadata=_range(0))
    eval_every: int = field(default=25, metadata=_range(0))
    loss_weights: LossWeights = field(default_factory=LossWeights)


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the augmented view (docs/method.md §5)."""

    flip: bool = False
    brightness: float = field(default=0.8, metadata=_range(0.0, 1.0))
    contrast: float = field(default=0.0, metadata=_range(0.0, 1.0))
    hue: float = field(default=0.0, metadata=_range(0.0, 0.5))
    degrees: float = field(default=20.0, metadata=_range(0.0, 180.0))
    translate: float = field(default=0.15, metadata=_range(0.0, 1.0))
    # Below a tenth the view is a blank patch, above ten times one pixel fills it.
    scale: tuple[float, float] = field(default=(0.7, 1.3), metadata=_range(0.1, 10.0))
    shear: float = field(default=20.0, metadata=_range(0.0, 89.0))


@dataclass(frozen=True)
class ExperimentalConfig:
    """Method details that rarely change, and additions kept for study: params.yaml does not list
    this block; presets (`faithful`) and `-S ++experimental.<key>=...` set it."""

    relations: str = field(default="spectral", metadata=_choices("targets", "features", "spectral"))
    bn_reestimate: bool = True
    theta_layout: str = field(default="paper", metadata=_choices("paper", "code"))
    att_lambda: float = field(default=0.05, metadata=_range(0.0, 10.0, lo_open=True))
    kmeans_n_init: int = field(default=20, metadata=_range(1, 100))
    guard_min_ratio: float = field(default=0.1, metadata=_range(0.0, 1.0))
    target_chunk: int = field(default=200, metadata=_range(1))
    sync_batchnorm: bool = True
    # How CUDA launches a step, beside sync_batchnorm: kept out of params.yaml's 40 listed keys.
    cuda_graphs: bool = True
    num_heads: int = field(default=1, metadata=_range(1, 32))
    overcluster: int = field(default=0, metadata=_range(0, 1000))
    neighbours: int = field(default=5, metadata=_range(0, 1000))


@dataclass(frozen=True)
class EvaluateConfig:
    """The evaluate stage."""

    attention_samples: int = field(default=32, metadata=_range(1, 1024))
    gallery_members: int = field(default=16, metadata=_range(1, 256))


@dataclass(frozen=True)
class ExportConfig:
    """The ONNX export stage."""

    # torch's exporter writes opset 18 and converts upwards; below 18 it falls back to 18 unasked.
    opset: int = field(default=18, metadata=_range(18, 23))
    registered_model: str | None = "gatcluster"


@dataclass(frozen=True)
class MlflowConfig:
    """MLflow tracking; experiment None means `gatcluster-<source>`."""

    experiment: str | None = None
    system_metrics_every: float = field(default=10.0, metadata=_range(0.0, 3600.0))


@dataclass(frozen=True)
class Params:
    """Every setting of a run, one block per pipeline stage."""

    seed: int = field(default=0, metadata=_range(0, 2**31 - 1))
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    experimental: ExperimentalConfig = field(default_factory=ExperimentalConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)


def params_to_dict(params: Params) -> dict[str, Any]:
    """The nested plain-dict form of `params` (tuples become lists), as in params.yaml."""
    return _plain(dataclasses.asdict(params))


def flatten_params(params: Params, sections: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Dotted keys to values, e.g. {"train.lr": 0.001}: the MLflow param names (only `sections` if given)."""
    flat: dict[str, Any] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{name}.")
            else:
                flat[name] = value

    walk(params_to_dict(params), "")
    if sections is None:
        return flat
    return {key: value for key, value in flat.items() if key.split(".")[0] in sections}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value

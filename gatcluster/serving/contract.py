"""The model contract: what an exported gatcluster ONNX model promises whoever runs it.

It travels as the ONNX file's metadata, so a predictor needs nothing but the `.onnx` file. This
module alone names the metadata keys: export writes them with `to_metadata`, `gat predict` and
`gat info` read and validate them with `read_contract`, tests build them the same way.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from gatcluster.data.fit import RULES
from gatcluster.data.images import preprocessing_record, reduces_jpeg
from gatcluster.path_kind import Kind, look_at, missing_reason
from gatcluster.path_text import shown_path

PREFIX = "gatcluster."
# The graph's input and outputs by name: export writes them, predict feeds and reads them.
INPUT_NAME = "image"
OUTPUT_NAMES = ("probs", "att_map", "features")
PREDICT_OUTPUTS = OUTPUT_NAMES[:2]
NORMALIZATION = "x / 255 (no mean/std)"
REQUIRED = ("input_size", "channels", "num_clusters", "resize_rule")


class ModelFileError(RuntimeError):
    """The model file is missing, unreadable, or not a gatcluster ONNX model."""


@dataclass(frozen=True)
class ModelContract:
    """Preprocessing and clusters of a model (what predict needs) and its provenance (what info shows).

    Input: decode in colour (`data.images`; JPEGs at a reduced scale when `reduced_jpeg`), fit by
    `resize_rule` (`data.fit`) to input_size, x / 255, luma when `channels` is 1
    (`data.views.clean_view`), NCHW float32. Models exported before JPEGs were decoded reduced
    carry no `jpeg_scale` in their preprocessing: they get full decodes, as they were trained.
    """

    input_size: int
    channels: int
    resize_rule: str
    num_clusters: int
    cluster_names: tuple[str, ...]
    source: str = ""
    git_commit: str = ""
    params_digest: str = ""
    reduced_jpeg: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.input_size < 1:
            problems.append(f"input_size {self.input_size} is not positive")
        if self.channels not in (1, 3):
            problems.append(f"channels {self.channels} is neither 1 nor 3")
        if self.resize_rule not in RULES:
            problems.append(f"resize_rule {self.resize_rule!r} is none of {', '.join(RULES)}")
        if self.num_clusters < 1:
            problems.append(f"num_clusters {self.num_clusters} is not positive")
        if len(self.cluster_names) != self.num_clusters:
            problems.append(f"{len(self.cluster_names)} cluster names for {self.num_clusters} clusters")
        if problems:
            raise ModelFileError("invalid model contract: " + "; ".join(problems))

    @property
    def grayscale(self) -> bool:
        """Whether the model takes one luma channel."""
        return self.channels == 1

    def preprocessing(self) -> dict[str, str]:
        """The decoding choices of `data.images.PREPROCESSING` that this model was trained with."""
        return preprocessing_record(self.reduced_jpeg)

    def to_metadata(self) -> dict[str, str]:
        """The ONNX metadata properties (string values) that carry this contract."""
        fields = {
            "input_size": str(self.input_size),
            "channels": str(self.channels),
            "color": "grayscale" if self.grayscale else "rgb",
            "normalization": NORMALIZATION,
            "resize_rule": self.resize_rule,
            "preprocessing": json.dumps(self.preprocessing()),
            "num_clusters": str(self.num_clusters),
            "cluster_names": json.dumps(list(self.cluster_names)),
            "source": self.source,
            "git_commit": self.git_commit,
            "params_digest": self.params_digest,
        }
        return {PREFIX + key: value for key, value in fields.items()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], origin: str = "the model") -> ModelContract:
        """The contract in `metadata`; ModelFileError naming what is missing or invalid."""
        meta = {k.removeprefix(PREFIX): v for k, v in metadata.items() if k.startswith(PREFIX)}
        missing = [PREFIX + key for key in REQUIRED if key not in meta]
        if missing:
            raise ModelFileError(f"{origin} is not a gatcluster model (metadata lacks {', '.join(missing)})")
        try:
            k = int(meta["num_clusters"])
            names = json.loads(meta.get("cluster_names", "null")) or [f"cluster {i}" for i in range(k)]
            return cls(
                input_size=int(meta["input_size"]),
                channels=int(meta["channels"]),
                resize_rule=meta["resize_rule"],
                num_clusters=k,
                cluster_names=tuple(str(name) for name in names),
                source=meta.get("source", ""),
                git_commit=meta.get("git_commit", ""),
                params_digest=meta.get("params_digest", ""),
                reduced_jpeg=reduces_jpeg(json_or_none(meta.get("preprocessing", "{}"))),
            )
        except (ValueError, TypeError, RecursionError) as err:  # int() or JSON of a damaged value
            raise ModelFileError(f"{origin} has unreadable gatcluster metadata ({err})") from err


def json_or_none(text: str) -> object:
    """`text` parsed as JSON; None when it is not (an informative value: damage is not fatal)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def model_source(path: Path) -> str | bytes:
    """What ONNX Runtime is given for the model file at `path`: its name, so that weights saved
    beside it are found (MLflow's registry stores an exported model's weights in a `.data` file next
    to `model.onnx`); its bytes where the name is not UTF-8, which ONNX Runtime's name argument
    refuses (a TypeError; such a model must keep its weights inside). ModelFileError naming a path
    that is missing, a folder, not a regular file, a broken symlink, too long or unreadable."""
    shown = shown_path(path)
    looked = look_at(path)
    problems = {
        Kind.MISSING: f"model file not found: {shown}{missing_reason(path)}",
        Kind.FOLDER: f"{shown} is a folder, not a model file: give the .onnx file",
        Kind.SPECIAL: f"{shown} is not a regular file: give the .onnx file",  # opening a FIFO would block
        Kind.BROKEN_LINK: f"{shown} is a broken symlink: give the .onnx file",
        Kind.UNREADABLE: f"{shown} cannot be read ({looked.reason})",  # a name over 255 bytes
    }
    if looked.kind in problems:
        raise ModelFileError(problems[looked.kind])
    try:
        with path.open("rb"):  # readable: ONNX Runtime would only say "Fail"
            pass
    except OSError as err:  # permission
        raise ModelFileError(f"{shown} cannot be read ({err.strerror or type(err).__name__})") from err
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes of the name that are not UTF-8
        return path.read_bytes()
    return name


def read_contract(path: Path) -> ModelContract:
    """The contract of the ONNX model at `path`; ModelFileError when it is absent or not ours."""
    model, shown = model_source(path), shown_path(path)
    import onnxruntime as ort  # serving's one runtime: the `onnx` package is a training dependency

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: a damaged file is reported below, in one line
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own InvalidProtobuf / Fail types for bad files
        if is_torch_file(path):
            raise ModelFileError(
                f"{shown} is a PyTorch file (trained weights), not an ONNX model: give the .onnx file"
                " the pipeline's export stage writes"
            ) from err
        raise ModelFileError(f"{shown} is not a readable ONNX model ({type(err).__name__})") from err
    contract = ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map, shown)
    check_graph(session, contract, shown)
    return contract


def is_torch_file(path: Path) -> bool:
    """Whether `path` is a file `torch.save` wrote (a zip archive holding `data.pkl`), such as the
    pipeline's `model.pt` or a checkpoint: the likeliest wrong file to give a command that reads
    the exported ONNX model."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except Exception:  # a damaged archive raises more than BadZipFile; this only picks a hint
        return False


def check_graph(session, contract: ModelContract, path: Path | str) -> None:
    """ModelFileError unless the graph takes the image and gives the clusters its metadata says:
    an `image` input (N, channels, input_size, input_size) and `probs` (N, num_clusters) and
    `att_map` outputs (a dimension the graph leaves symbolic matches anything)."""
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    wanted_in = [None, contract.channels, contract.input_size, contract.input_size]
    problems = []
    if not _dims_match(inputs.get(INPUT_NAME), wanted_in):
        problems.append(f"input {INPUT_NAME} {inputs.get(INPUT_NAME)} for {wanted_in[1:]} images")
    probs, att_map = PREDICT_OUTPUTS
    if not _dims_match(outputs.get(probs), [None, contract.num_clusters]):
        problems.append(f"output {probs} {outputs.get(probs)} for {contract.num_clusters} clusters")
    if att_map not in outputs:
        problems.append(f"no output {att_map}")
    if problems:
        found = "; ".join(problems)
        raise ModelFileError(
            f"{path}: the graph does not match its gatcluster metadata ({found}): export it again"
        )


def _dims_match(shape: list | None, wanted: list[int | None]) -> bool:
    """Whether an ONNX shape has `wanted`'s rank and equals it wherever both are numbers."""
    if shape is None or len(shape) != len(wanted):
        return False
    return all(not isinstance(d, int) or w is None or d == w for d, w in zip(shape, wanted, strict=True))

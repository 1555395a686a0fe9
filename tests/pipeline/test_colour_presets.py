"""The colour path: the stl10 (96 px) and imagenet10 (128 px) preset shapes, trained end to end on a
small colour image folder made here, converge on an easy case and export to ONNX that predicts the
folder's files as the trained network does.

The presets' shapes are kept (backbone, input side, the data's colour, the grey or colour model
input); their GPU schedule (6,000 iterations, paper trainer) is replaced by a short CPU one, and the
width is cut so that the test stays a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params
from gatcluster.config.params_edit import preset_overrides
from gatcluster.data.prepare import prepare_images
from gatcluster.data.sources import load_folder
from gatcluster.data.walk import walk_files
from gatcluster.evaluation.metrics import cluster_scores
from gatcluster.serving.contract import ModelContract, read_contract
from gatcluster.serving.onnx_export import export_onnx
from gatcluster.serving.onnx_predict import batches, open_session, predict_batch
from gatcluster.training.fit import fit
from gatcluster.training.passes import predict_clusters

PER_CLASS = 16
ITERATIONS = {"stl10": 20, "imagenet10": 30}  # the greyscale 96 px shape converges sooner
CLASSES = ("disc", "stripes", "window")
SHORT_CPU_SCHEDULE = {
    "model.num_clusters": len(CLASSES),
    "model.fea_dim": 16,  # a 3-channel label feature behind a ReLU (imagenet128) can die at once
    "model.width_mult": 0.125,
    "train.large_batch": len(CLASSES) * PER_CLASS,
    "train.sub_batch": 16,
    "train.repeats": 2,
    "experimental.target_chunk": len(CLASSES) * PER_CLASS,
    # Measured on an Intel Xeon, one thread as in the suite, seeds 0-7 and, with AVX2 kernels only
    # (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2), seeds 0-3: at this rate and the iterations
    # below, 22 of 24 runs reached ACC 1.0, the others 0.958 (stl10) and 0.938 (imagenet10, AVX2).
    # At lr 0.002 both needed 40 (15 of 16 runs >= 0.94); at 0.005, 20 iterations of imagenet10
    # still merged two classes in one of four seeds (ACC 0.79).
    "train.lr": 0.004,
    "experimental.bn_reestimate": True,
    "train.device": "cpu",
    "train.checkpoint_every": 0,
    "train.eval_every": 0,
}


def draw(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One noisy RGB image of an easy class: a red disc, green stripes, or a dark window on yellow."""
    yy, xx = np.mgrid[:size, :size] / size
    cx, cy = rng.uniform(0.35, 0.65, 2)
    img = np.zeros((size, size, 3))
    if kind == "disc":
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < rng.uniform(0.15, 0.25) ** 2] = (1.0, 0.2, 0.1)
    elif kind == "stripes":
        img[np.sin(yy * 40 * np.pi + rng.uniform(0, 6)) > 0] = (0.1, 0.9, 0.2)
    else:
        img[:] = (1.0, 0.95, 0.3)
        img[(abs(xx - cx) < 0.15) & (abs(yy - cy) < 0.15)] = 0.0
    img += rng.normal(0, 0.05, img.shape)
    return (img.clip(0, 1) * 255).astype(np.uint8)


def colour_folder(root, size: int):
    """root/<class>/<n>.png, PER_CLASS images of each class, size × size, in colour."""
    rng = np.random.default_rng(0)
    for kind in CLASSES:
        (root / kind).mkdir(parents=True)
        for i in range(PER_CLASS):
            Image.fromarray(draw(kind, size, rng)).save(root / kind / f"{i:03d}.png")
    return root


@pytest.mark.parametrize(("preset", "grayscale"), [("stl10", True), ("imagenet10", False)])
def test_colour_preset_shapes_train_converge_and_export(tmp_path, preset, grayscale):
    shape = preset_overrides(preset)
    size = replace_params(Params(), shape).model.input_size
    root = colour_folder(tmp_path / "images", size)
    overrides = {"data.source": "folder", "data.root": str(root), "data.grayscale": grayscale}
    schedule = {**SHORT_CPU_SCHEDULE, "train.iterations": ITERATIONS[preset]}
    params = replace_params(Params(), {**shape, **schedule, **overrides})
    assert params.model.backbone == {"stl10": "stl96", "imagenet10": "imagenet128"}[preset]

    data, skipped = load_folder(root, size)  # what fetch stores for a folder source
    assert not skipped and data.images.shape == (len(CLASSES) * PER_CLASS, size, size, 3)
    images = prepare_images(data.images, size, grayscale)
    model = fit(params, images).model.eval()
    pred = predict_clusters(model, images, 100, grayscale, torch.device("cpu")).numpy()
    assert cluster_scores(pred, data.labels).acc >= 0.9, np.bincount(pred, minlength=len(CLASSES))

    path = tmp_path / "model.onnx"
    names = tuple(f"cluster-{k}" for k in range(len(CLASSES)))
    channels = 1 if grayscale else 3
    contract = ModelContract(size, channels, data.resize_rule, len(CLASSES), names, source="folder")
    export_onnx(model, path, params.export.opset, contract.to_metadata())
    contract = read_contract(path)
    assert (contract.input_size, contract.channels) == (size, channels)
    session, _ = open_session(path, "cpu")
    served = []  # the folder's files in walk order, as load_folder read them
    for paths, fitted, _ in batches(walk_files([root]), contract, 32):
        served += [p.cluster for p in predict_batch(session, contract, paths, fitted)]
    onnx_pred = np.array(served)
    assert len(onnx_pred) == len(pred) and (onnx_pred == pred).mean() >= 0.98

"""Chunked predictions and BatchNorm re-estimation on clean images."""

from __future__ import annotations

import torch

from gatcluster.config.params import ExperimentalConfig, ModelConfig
from gatcluster.data.views import clean_view
from gatcluster.model import GATCluster
from gatcluster.training.passes import (
    batchnorm_layers,
    chunked_outputs,
    predict_clusters,
    preserved_batchnorm_stats,
    reestimate_batchnorm,
)

CPU = torch.device("cpu")


def model_and_images(n: int = 60) -> tuple[GATCluster, torch.Tensor]:
    torch.manual_seed(0)
    model = GATCluster(ModelConfig(width_mult=0.125), in_channels=1)
    images = torch.randint(
        0, 256, (n, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    return model, images


def test_chunking_does_not_change_predictions():
    model, images = model_and_images()
    whole = chunked_outputs(model, images, 60, True, CPU)
    parts = chunked_outputs(model, images, 7, True, CPU, channels_last=True)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(whole, parts, strict=True))
    assert torch.equal(predict_clusters(model, images, 13, True, CPU), whole.probs.argmax(1))
    assert not model.training


def test_reestimated_statistics_are_those_of_the_clean_images():
    model, images = model_and_images()
    model.train()
    reestimate_batchnorm(model, images, 20, True, CPU)
    first_conv, first_bn = model.backbone[0], model.backbone[1]
    with torch.no_grad():
        activations = first_conv(clean_view(images, True))
    assert torch.allclose(first_bn.running_mean, activations.mean(dim=(0, 2, 3)), atol=1e-5)
    assert model.training  # the mode is restored
    assert all(m.momentum == 0.1 for m in batchnorm_layers(model))  # and the momenta


def test_a_short_last_chunk_weighs_as_many_images_as_it_holds():
    # 41 images in chunks of 20: the last chunk is one image, which once weighed as much as 20.
    model, images = model_and_images(41)
    reestimate_batchnorm(model, images, 20, True, CPU)
    chunked = model.backbone[1].running_mean.clone()
    reestimate_batchnorm(model, images, 41, True, CPU)
    whole = model.backbone[1].running_mean
    assert torch.allclose(chunked, whole, atol=1e-5), (chunked - whole).abs().max()


def test_a_class_sorted_store_refit_in_a_shuffled_order_measures_the_whole_spread():
    # Dark images, then bright ones, as a store of class sub-folders keeps them: in stored order
    # each chunk holds one kind and measures only the variance within it.
    model, images = model_and_images(80)
    images[:40] //= 4
    images[40:] = 192 + images[40:] // 4
    reestimate_batchnorm(model, images, 80, True, CPU)
    whole = model.backbone[1].running_var.clone()
    reestimate_batchnorm(model, images, 20, True, CPU)
    assert model.backbone[1].running_var.sum() < 0.5 * whole.sum()
    order = torch.randperm(80, generator=torch.Generator().manual_seed(0))
    reestimate_batchnorm(model, images, 20, True, CPU, order=order)
    assert torch.allclose(model.backbone[1].running_var, whole, rtol=0.15)


def test_reestimation_leaves_the_weights_alone():
    model, images = model_and_images()
    weights = {
        k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "tracked" not in k
    }
    reestimate_batchnorm(model, images, 30, True, CPU)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())


def test_preserved_statistics_come_back_after_reestimation():
    model, images = model_and_images()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    with preserved_batchnorm_stats(model):
        reestimate_batchnorm(model, images, 30, True, CPU)
        model.eval()
        assert not torch.equal(model.backbone[1].running_mean, before["backbone.1.running_mean"])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items()) and model.training


def test_reestimation_reaches_every_head():
    # Extra and over-clustering heads have BatchNorm layers of their own: a forward through the
    # first head only would leave them reset (mean 0, variance 1) and their predictions garbage.
    torch.manual_seed(0)
    model = GATCluster(ModelConfig(width_mult=0.125), 1, ExperimentalConfig(num_heads=2, overcluster=20))
    _, images = model_and_images()
    reestimate_batchnorm(model, images, 20, True, CPU)
    for head in (model.extra_heads[0], model.overcluster_heads[0]):
        bn = head.feature_conv[1]
        assert int(bn.num_batches_tracked) == 3  # 60 images in chunks of 20
        assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))

"""Backbones, the Gaussian-attention head and the network: shapes and Gaussian-map properties."""

from __future__ import annotations

import pytest
import torch

from gatcluster.config.params import ExperimentalConfig, ModelConfig
from gatcluster.model import GATCluster
from gatcluster.model.backbone import BACKBONE_SPECS, build_backbone, scaled_width
from gatcluster.model.head import GaussianAttentionHead, gaussian_map


@pytest.mark.parametrize(
    ("name", "size", "side"), [("small32", 32, 4), ("stl96", 96, 6), ("imagenet128", 128, 6)]
)
@pytest.mark.parametrize("channels", [1, 3])
def test_backbone_map_shape(name, size, side, channels):
    backbone = build_backbone(name, channels, fea_dim=12, width_mult=0.125).eval()
    with torch.no_grad():
        fmap = backbone(torch.rand(2, channels, size, size))
    assert fmap.shape == (2, 12, side, side) and BACKBONE_SPECS[name].map_size == side


def test_paper_backbones_use_unpadded_convs_with_batchnorm_and_relu():
    layers = list(build_backbone("stl96", 3, 10, 1.0))
    convs = [m for m in layers if isinstance(m, torch.nn.Conv2d)]
    assert all(c.padding == (0, 0) for c in convs)
    assert [c.out_channels for c in convs] == [64] * 3 + [128] * 3 + [256] * 3 + [10]
    for i, m in enumerate(layers):
        if isinstance(m, torch.nn.Conv2d):
            assert isinstance(layers[i + 1], torch.nn.BatchNorm2d) and isinstance(
                layers[i + 2], torch.nn.ReLU
            )
    tail = [c for c in build_backbone("imagenet128", 3, 10, 1.0) if isinstance(c, torch.nn.Conv2d)]
    assert [c.out_channels for c in tail[-3:]] == [256, 256, 10]


def test_width_multiplier_scales_channels():
    assert scaled_width(64, 0.25) == 16 and scaled_width(256, 0.5) == 128 and scaled_width(64, 0.01) == 4
    first = build_backbone("small32", 1, 10, 0.5)[0]
    assert first.out_channels == 32 and first.in_channels == 1


def test_gaussian_map_peaks_at_one_on_its_centre_node():
    theta = torch.tensor([[1 / 3, 2 / 3, 0.5]])
    a = gaussian_map(theta, 4, 0.05, "paper")[0]
    assert a[1, 2].item() == pytest.approx(1.0) and a.argmax().item() == 1 * 4 + 2
    assert (a <= 1.0).all() and (a > 0).all()


def test_gaussian_map_is_symmetric_about_a_central_mean():
    a = gaussian_map(torch.tensor([[0.5, 0.5, 0.3]]), 5, 0.05, "paper")[0]
    assert torch.allclose(a, a.flip(0)) and torch.allclose(a, a.flip(1)) and torch.allclose(a, a.T)


def test_gaussian_width_grows_with_s():
    narrow, wide = gaussian_map(torch.tensor([[0.5, 0.5, 0.1], [0.5, 0.5, 0.9]]), 6, 0.05, "paper")
    assert wide.sum() > narrow.sum()


def test_code_layout_ignores_theta1_and_centres_columns_on_theta2():
    a = gaussian_map(torch.tensor([[0.0, 0.1, 1.0], [0.0, 0.9, 1.0]]), 4, 0.05, "code")
    assert torch.equal(a[0], a[1])
    assert a[0, 0, 3].item() == pytest.approx(1.0)  # μ = (θ0, θ2) = (0, 1)
    paper = gaussian_map(torch.tensor([[0.0, 0.1, 1.0], [0.0, 0.9, 1.0]]), 4, 0.05, "paper")
    assert not torch.equal(paper[0], paper[1])


@pytest.mark.parametrize(("att_conv", "feature_relu"), [(True, False), (False, True)])
def test_head_outputs(att_conv, feature_relu):
    head = GaussianAttentionHead(8, 5, 6, feature_relu=feature_relu, att_conv=att_conv).eval()
    with torch.no_grad():
        out = head(torch.randn(3, 8, 6, 6))
    assert out.features.shape == out.att_features.shape == (3, 8)
    assert out.probs.shape == out.att_probs.shape == (3, 5)
    assert out.att_map.shape == (3, 6, 6)
    assert torch.allclose(out.probs.sum(1), torch.ones(3)) and torch.allclose(
        out.att_probs.sum(1), torch.ones(3)
    )


def test_attended_feature_is_the_map_weighted_spatial_sum():
    head = GaussianAttentionHead(4, 3, 4, feature_relu=False, att_conv=True).eval()
    fmap = torch.randn(2, 4, 4, 4)
    with torch.no_grad():
        out = head(fmap)
        g = head.feature_conv(fmap)
    assert torch.allclose(out.att_features, (g * out.att_map[:, None]).sum(dim=(2, 3)), atol=1e-5)
    assert torch.allclose(out.features, g.mean(dim=(2, 3)), atol=1e-6)


@pytest.mark.parametrize(("backbone", "size"), [("small32", 32), ("stl96", 96)])
def test_network_forward_is_features_then_head(backbone, size):
    model = GATCluster(ModelConfig(backbone=backbone, width_mult=0.125, num_clusters=7), in_channels=3).eval()
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        out = model(x)
        staged = model.forward_head(model.forward_features(x))
    assert out.probs.shape == (2, 7) and model.input_size == size
    assert all(torch.equal(a, b) for a, b in zip(out, staged, strict=True))


def test_fea_dim_defaults_to_the_number_of_clusters():
    model = GATCluster(ModelConfig(num_clusters=6, width_mult=0.125), in_channels=1).eval()
    with torch.no_grad():
        assert model.forward_features(torch.rand(1, 1, 32, 32)).shape == (1, 6, 4, 4)
    wide = GATCluster(ModelConfig(num_clusters=6, fea_dim=20, width_mult=0.125), in_channels=1).eval()
    with torch.no_grad():
        assert wide(torch.rand(1, 1, 32, 32)).features.shape == (1, 20)


def test_extra_heads_share_the_backbone_and_keep_head_leaves_one():
    cfg = ModelConfig(num_clusters=6, width_mult=0.125)
    torch.manual_seed(0)
    model = GATCluster(cfg, 1, ExperimentalConfig(num_heads=3, overcluster=18)).eval()
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        outs = model.forward_heads(x)
        assert [o.probs.shape[1] for o in outs] == [6, 6, 6, 18]
        assert model.num_heads == 3
        assert not torch.allclose(outs[0].probs, outs[1].probs)  # each head has its own weights
        model.keep_head(2)
        assert model.num_heads == 1 and len(model.forward_heads(x)) == 1
        assert torch.equal(model(x).probs, outs[2].probs)
    assert not any(k.startswith(("extra_heads", "overcluster_heads")) for k in model.state_dict())


def test_one_head_network_draws_the_same_weights_as_before_the_switches():
    # Extra heads are built after the first, so a one-head model's init does not move.
    torch.manual_seed(0)
    one = GATCluster(ModelConfig(width_mult=0.125), in_channels=1)
    torch.manual_seed(0)
    many = GATCluster(ModelConfig(width_mult=0.125), 1, ExperimentalConfig(num_heads=2, overcluster=20))
    many.keep_head(0)
    assert one.state_dict().keys() == many.state_dict().keys()
    assert all(torch.equal(v, many.state_dict()[k]) for k, v in one.state_dict().items())


@pytest.mark.parametrize(
    ("backbone", "size", "middle_side"), [("small32", 32, 8), ("stl96", 96, 8), ("imagenet128", 128, 8)]
)
def test_middle_features_come_from_the_same_pass_after_the_second_pool(backbone, size, middle_side):
    cfg = ModelConfig(backbone=backbone, width_mult=0.125, num_clusters=5)
    model = GATCluster(cfg, in_channels=1, experimental=ExperimentalConfig(num_heads=2)).eval()
    x = torch.rand(3, 1, size, size)
    with torch.no_grad():
        outs, middle = model.forward_heads_with_middle(x)
        plain = model.forward_heads(x)
        up_to_second_pool = model.backbone[: model.middle_end](x)
    assert isinstance(model.backbone[model.middle_end - 1], torch.nn.MaxPool2d)
    pools = [m for m in model.backbone[: model.middle_end] if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 2
    for a, b in zip(outs, plain, strict=True):
        assert all(torch.equal(s, t) for s, t in zip(a, b, strict=True))
    # Middle channels: 128 * width_mult; larger maps are averaged down to 8x8.
    assert middle.shape == (3, 16 * middle_side * middle_side)
    if up_to_second_pool.shape[-1] == middle_side:
        assert torch.equal(middle, up_to_second_pool.flatten(1))
    else:
        pooled = torch.nn.functional.adaptive_avg_pool2d(up_to_second_pool, middle_side)
        assert torch.allclose(middle, pooled.flatten(1))

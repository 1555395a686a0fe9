"""VGG-style backbones that map an image to a C×S×S label-feature map (docs/method.md §2).

`stl96` and `imagenet128` are the authors' networks (3×3 convs without padding); `small32` is this
project's variant for 28/32-px images (padding 1, a 4×4 map). A width multiplier scales 64/128/256.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class BackboneSpec:
    """How one backbone is laid out: input side, map side, padding, extra 3×3 convs at the end."""

    input_size: int
    map_size: int
    padding: int
    tail_convs: int  # 3×3 convs of width 256 before the final 1×1 (ImageNet-10 only)
    feature_relu: bool  # ReLU after the head's feature conv (ImageNet-10) or not (STL-10)
    att_conv: bool  # the head's att_conv branch on the backbone map (STL-10) or not


BACKBONE_SPECS = {
    "small32": BackboneSpec(32, 4, 1, 0, False, True),
    "stl96": BackboneSpec(96, 6, 0, 0, False, True),
    "imagenet128": BackboneSpec(128, 6, 0, 2, True, False),
}


def conv_block(in_ch: int, out_ch: int, kernel: int, padding: int) -> list[nn.Module]:
    """Conv2d (with bias) -> BatchNorm2d -> ReLU."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=1, padding=padding, bias=True)
    return [conv, nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


def scaled_width(base: int, width_mult: float) -> int:
    """Channel count `base` scaled by `width_mult`, at least 4."""
    return max(4, int(round(base * width_mult)))


def build_backbone(name: str, in_channels: int, fea_dim: int, width_mult: float) -> nn.Sequential:
    """The backbone `name` as one nn.Sequential ending in a fea_dim×S×S map."""
    spec = BACKBONE_SPECS[name]
    layers: list[nn.Module] = []
    ch = in_channels
    for base in (64, 128, 256):
        width = scaled_width(base, width_mult)
        for _ in range(3):
            layers += conv_block(ch, width, 3, spec.padding)
            ch = width
        layers.append(nn.MaxPool2d(2, 2))
    for _ in range(spec.tail_convs):
        width = scaled_width(256, width_mult)
        layers += conv_block(ch, width, 3, spec.padding)
        ch = width
    layers += conv_block(ch, fea_dim, 1, 0)
    return nn.Sequential(*layers)

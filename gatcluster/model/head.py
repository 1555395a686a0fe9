"""The Gaussian-attention head: global branch, attention parameters, Gaussian map (docs/method.md §2)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

GAUSSIAN_EPS = 1e-5


class HeadOutput(NamedTuple):
    """What the head returns; p and q are float32 probabilities, a is the attention map."""

    features: torch.Tensor  # f: (B, C) global average of the feature map
    probs: torch.Tensor  # p: (B, K) global-head cluster probabilities
    att_features: torch.Tensor  # h: (B, C) attention-weighted spatial sum
    att_probs: torch.Tensor  # q: (B, K) attention-head cluster probabilities
    att_map: torch.Tensor  # a: (B, S, S) Gaussian attention map, 1 where μ sits on a node


def gaussian_map(theta: torch.Tensor, size: int, lam: float, layout: str) -> torch.Tensor:
    """Gaussian maps (B, S, S) from θ ∈ (0,1)^3.

    `paper`: μ = (θ0, θ1), s = θ2. `code` (the authors' code): μ = (θ0, θ2), s = θ2, θ1 unused.
    The variance is λ·s (not squared) and the map is not normalised.
    """
    mu_col = theta[:, 1] if layout == "paper" else theta[:, 2]
    mu = torch.stack([theta[:, 0], mu_col], dim=1)  # (B, 2), (row, col)
    coords = torch.arange(size, device=theta.device, dtype=theta.dtype) / (size - 1)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    grid = torch.stack([rows, cols], dim=-1)  # (S, S, 2)
    dist2 = ((grid[None] - mu[:, None, None, :]) ** 2).sum(-1)  # (B, S, S)
    var2 = 2 * lam * theta[:, 2] + GAUSSIAN_EPS  # (B,)
    return torch.exp(-dist2 / var2[:, None, None])


def classifier(in_dim: int, num_clusters: int) -> nn.Sequential:
    """The two-layer classifier [in_dim -> K -> K] that both heads use (logits out)."""
    return nn.Sequential(
        nn.Linear(in_dim, num_clusters),
        nn.ReLU(inplace=True),
        nn.Linear(num_clusters, num_clusters),
    )


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision (autocast) outputs; float64 stays float64 (exactness checks)."""
    return t if t.dtype == torch.float64 else t.float()


class GaussianAttentionHead(nn.Module):
    """Global and Gaussian-attention cluster heads on a C×S×S backbone map."""

    def __init__(
        self,
        fea_dim: int,
        num_clusters: int,
        map_size: int,
        feature_relu: bool,
        att_conv: bool,
        theta_layout: str = "paper",
        att_lambda: float = 0.05,
    ) -> None:
        super().__init__()
        self.map_size = map_size
        self.theta_layout = theta_layout
        self.att_lambda = att_lambda
        feature = [nn.Conv2d(fea_dim, fea_dim, 1), nn.BatchNorm2d(fea_dim)]
        self.feature_conv = nn.Sequential(*feature, *([nn.ReLU(inplace=True)] * feature_relu))
        self.global_classifier = classifier(fea_dim, num_clusters)
        att_channels = num_clusters if att_conv else fea_dim
        self.att_conv = (
            nn.Sequential(
                nn.Conv2d(fea_dim, num_clusters, 1),
                nn.BatchNorm2d(num_clusters),
                nn.ReLU(inplace=True),
            )
            if att_conv
            else nn.Identity()
        )
        self.theta_fc = nn.Linear(att_channels * map_size * map_size, 3)
        self.att_classifier = classifier(fea_dim, num_clusters)

    def attention_params(self, fmap: torch.Tensor) -> torch.Tensor:
        """θ ∈ (0,1)^3 per image from the backbone map (B, C, S, S) -> (B, 3), in float32."""
        flat = full_precision(self.att_conv(fmap).flatten(1))
        with torch.autocast(fmap.device.type, enabled=False):
            return torch.sigmoid(self.theta_fc(flat))

    def forward(self, fmap: torch.Tensor) -> HeadOutput:
        g = full_precision(self.feature_conv(fmap))  # (B, C, S, S)
        theta = self.attention_params(fmap)
        # After the convolutions everything runs in float32, autocast or not: these layers cost
        # nothing, and bf16 logits (8 significant bits) would quantise the probabilities the
        # losses compare (docs/numerics.md).
        with torch.autocast(fmap.device.type, enabled=False):
            f = g.mean(dim=(2, 3))  # (B, C)
            p = self.global_classifier(f).softmax(dim=1)  # (B, K)
            a = gaussian_map(theta, self.map_size, self.att_lambda, self.theta_layout)  # (B, S, S)
            h = (g * a[:, None]).sum(dim=(2, 3))  # (B, C)
            q = self.att_classifier(h).softmax(dim=1)  # (B, K)
        return HeadOutput(f, p, h, q, a)

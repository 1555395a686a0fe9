"""GATCluster: backbone + Gaussian-attention head behind a timm-like interface."""

from __future__ import annotations

import torch
from torch import nn

from gatcluster.config import ModelConfig
from gatcluster.model.backbone import BACKBONE_SPECS, build_backbone
from gatcluster.model.head import GaussianAttentionHead, HeadOutput


class GATCluster(nn.Module):
    """One network that clusters images: argmax of the global head's probabilities."""

    def __init__(self, cfg: ModelConfig, in_channels: int) -> None:
        super().__init__()
        spec = BACKBONE_SPECS[cfg.backbone]
        fea_dim = cfg.fea_dim or cfg.num_clusters
        self.input_size = spec.input_size
        self.in_channels = in_channels
        self.backbone = build_backbone(cfg.backbone, in_channels, fea_dim, cfg.width_mult)
        self.head = GaussianAttentionHead(
            fea_dim,
            cfg.num_clusters,
            spec.map_size,
            feature_relu=spec.feature_relu,
            att_conv=spec.att_conv,
            theta_layout=cfg.theta_layout,
            att_lambda=cfg.att_lambda,
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C_in, H, W) -> backbone map (B, C, S, S)."""
        return self.backbone(x)

    def forward_head(self, fmap: torch.Tensor) -> HeadOutput:
        """Backbone map -> (f, p, h, q, a)."""
        return self.head(fmap)

    def forward(self, x: torch.Tensor) -> HeadOutput:
        return self.forward_head(self.forward_features(x))

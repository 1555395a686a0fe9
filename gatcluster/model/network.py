"""GATCluster: backbone + Gaussian-attention head(s) behind a timm-like interface.

`experimental.num_heads` > 1 puts several cluster heads on one backbone (each trained on its own
targets); `experimental.overcluster` adds an auxiliary head with more clusters than K. Both exist only
during training: `keep_head` reduces the network to the one selected head, which is what is saved
and exported. With one head and no over-clustering the network is exactly the paper's.

The mid-level features (after the backbone's second pooling stage) are what `experimental.relations:
features` clusters for the separability relations: in a trained network they are far more
class-pure than the label features (docs/method.md §3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gatcluster.config.params import ExperimentalConfig, ModelConfig
from gatcluster.model.backbone import BACKBONE_SPECS, build_backbone
from gatcluster.model.head import GaussianAttentionHead, HeadOutput

# The mid-level map is average-pooled to at most this side, so its size stays bounded on large
# inputs (small32's 8×8 map is kept as it is).
MIDDLE_MAX_SIDE = 8


def middle_stage_end(backbone: nn.Sequential) -> int:
    """The index just past the backbone's second max-pool: where its mid-level features are."""
    pools = [i for i, layer in enumerate(backbone) if isinstance(layer, nn.MaxPool2d)]
    return pools[1] + 1


class GATCluster(nn.Module):
    """One network that clusters images: argmax of the (selected) global head's probabilities."""

    def __init__(
        self, cfg: ModelConfig, in_channels: int, experimental: ExperimentalConfig | None = None
    ) -> None:
        super().__init__()
        extra = experimental or ExperimentalConfig()
        spec = BACKBONE_SPECS[cfg.backbone]
        fea_dim = cfg.fea_dim or cfg.num_clusters
        self.input_size = spec.input_size
        self.in_channels = in_channels

        def make_head(num_clusters: int) -> GaussianAttentionHead:
            return GaussianAttentionHead(
                fea_dim,
                num_clusters,
                spec.map_size,
                feature_relu=spec.feature_relu,
                att_conv=spec.att_conv,
                theta_layout=extra.theta_layout,
                att_lambda=extra.att_lambda,
            )

        self.backbone = build_backbone(cfg.backbone, in_channels, fea_dim, cfg.width_mult)
        self.middle_end = middle_stage_end(self.backbone)
        self.head = make_head(cfg.num_clusters)
        # Created after the first head, so a one-head model draws the same initial weights as before.
        self.extra_heads = nn.ModuleList(make_head(cfg.num_clusters) for _ in range(extra.num_heads - 1))
        self.overcluster_heads = nn.ModuleList([make_head(extra.overcluster)] if extra.overcluster else [])

    @property
    def num_heads(self) -> int:
        """The number of K-cluster heads (candidates for selection)."""
        return 1 + len(self.extra_heads)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C_in, H, W) -> backbone map (B, C, S, S)."""
        return self.backbone(x)

    def forward_head(self, fmap: torch.Tensor) -> HeadOutput:
        """Backbone map -> (f, p, h, q, a) of the first head."""
        return self.head(fmap)

    def all_heads(self) -> list[GaussianAttentionHead]:
        """The K-cluster heads in order, then the over-clustering head."""
        return [self.head, *self.extra_heads, *self.overcluster_heads]

    def forward_heads(self, x: torch.Tensor) -> list[HeadOutput]:
        """Outputs of every head: the K-cluster heads in order, then the over-clustering head."""
        fmap = self.forward_features(x)
        return [head(fmap) for head in self.all_heads()]

    def forward_heads_with_middle(self, x: torch.Tensor) -> tuple[list[HeadOutput], torch.Tensor]:
        """`forward_heads` and the flattened mid-level features (B, D) of the same forward pass."""
        middle = self.backbone[: self.middle_end](x)
        fmap = self.backbone[self.middle_end :](middle)
        if middle.shape[-1] > MIDDLE_MAX_SIDE:
            middle = F.adaptive_avg_pool2d(middle, MIDDLE_MAX_SIDE)
        return [head(fmap) for head in self.all_heads()], middle.flatten(1)

    def keep_head(self, index: int) -> None:
        """Keep only K-cluster head `index` (as `head`); drop the others and the over-clustering head."""
        heads = [self.head, *self.extra_heads]
        self.head = heads[index]
        self.extra_heads = nn.ModuleList()
        self.overcluster_heads = nn.ModuleList()

    def forward(self, x: torch.Tensor) -> HeadOutput:
        return self.forward_head(self.forward_features(x))

"""The GATCluster network: backbones and the Gaussian-attention head."""

from gatcluster.model.backbone import BACKBONE_SPECS, build_backbone
from gatcluster.model.head import GaussianAttentionHead, HeadOutput, gaussian_map
from gatcluster.model.network import GATCluster

__all__ = [
    "BACKBONE_SPECS",
    "GATCluster",
    "GaussianAttentionHead",
    "HeadOutput",
    "build_backbone",
    "gaussian_map",
]

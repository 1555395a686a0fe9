"""gatcluster: self-supervised Gaussian-attention image clustering (Niu et al., ECCV 2020)."""

__version__ = "0.1.0"

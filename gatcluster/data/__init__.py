"""Data: bundled sources, the on-disk store, model-input fitting and the two views."""

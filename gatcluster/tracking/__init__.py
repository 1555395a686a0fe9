"""Tracking: MLflow runs of the pipeline and the closing of runs whose process died."""

"""Serving: ONNX export, the model contract, ONNX Runtime prediction and prediction tables."""

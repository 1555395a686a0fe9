"""Evaluation: clustering metrics, the report of a trained model, attention pictures."""

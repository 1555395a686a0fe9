"""Training: the two-step trainer, its losses and targets, seeded streams, checkpoints, the additions."""

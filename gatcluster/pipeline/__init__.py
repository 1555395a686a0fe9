"""The pipeline's stages as library functions: what `stages/*.py` run, and what tests call in-process."""

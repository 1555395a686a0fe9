"""The `gat` command line."""

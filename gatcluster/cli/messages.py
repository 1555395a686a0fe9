"""How `gat` commands end with an error: one line on stderr and an exit code (gatcluster/exit_codes.py)."""

from __future__ import annotations

import typer

from gatcluster.exit_codes import EXIT_USAGE


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print `message` on stderr; the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)

"""How `gat` reads the paths and names its users type: an empty one is refused as a usage error.

An empty string usually comes from a shell variable that was never set (`--out "$OUT"`). Typer would
turn it into Path("."), the current folder (`gat predict ""` clustered it; `--params ""` said ". is a
folder"), and a string option would fall back to its default (`gat server --backend-store-uri ""`
started on ./mlflow.db instead of the team's database). These parsers, given to typer.Option and
typer.Argument as `parser=`, stop the command before it runs, naming the option.
"""

from __future__ import annotations

from pathlib import Path

import typer

EMPTY = "an empty string (a shell variable that was never set?)"


def given_path(value: str) -> Path:
    """A path argument as typed; BadParameter (exit 2, the option named) for an empty string."""
    return Path(given_text(value))


def given_text(value: str) -> str:
    """A string argument as typed; BadParameter (exit 2, the option named) for an empty string."""
    if value == "":
        raise typer.BadParameter(EMPTY)
    return value

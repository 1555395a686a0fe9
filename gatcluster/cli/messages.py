"""How `gat` commands end with an error: one line on stderr and an exit code (gatcluster/exit_codes.py)."""

from __future__ import annotations

import sys

import typer

from gatcluster.exit_codes import EXIT_USAGE


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print `message` on stderr; the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def store_error(err: Exception) -> str | None:
    """What the SQL store behind the registry said (a locked or damaged mlflow.db: SQLAlchemy
    raises it past MLflow), in one line; None for any other error, which is a bug."""
    sql = sys.modules.get("sqlalchemy.exc")
    if sql is None or not isinstance(err, sql.SQLAlchemyError):
        return None
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__

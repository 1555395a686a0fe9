"""Which stores MLflow can track runs in, told from MLFLOW_TRACKING_URI alone (no MLflow import).

The check stage and `gat check` ask before any stage sets its outputs aside: a URI MLflow cannot
use used to stop the train stage only after `dvc repro` had removed the previous model and curves.
"""

from __future__ import annotations

# Schemes of the stores MLflow tracks in (the part before any SQLAlchemy `+driver`); a plain path
# or a file: URI is its file store, which MLflow 3 writes only when MLFLOW_ALLOW_FILE_STORE is set.
STORE_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc")
USE_INSTEAD = (
    "use sqlite:///<path>/mlflow.db, a server (http://host:port) or a database URL (postgresql://...)"
)
IN_MEMORY = ("sqlite://", "sqlite:///", "sqlite:///:memory:")


def file_store_allowed(value: str | None) -> bool:
    """MLFLOW_ALLOW_FILE_STORE's value as MLflow reads a boolean variable ("true" or "1")."""
    return (value or "").strip().lower() in ("true", "1")


def tracking_uri_problem(uri: str, allow_file_store: bool = False) -> str | None:
    """Why MLflow could not track runs in `uri`, in words that follow the URI in a message; None
    where it can. `allow_file_store`: MLFLOW_ALLOW_FILE_STORE is true."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme in ("", "file"):
        if allow_file_store:
            return None
        return (
            "is a file store (mlruns/), which MLflow 3 writes only with MLFLOW_ALLOW_FILE_STORE=true:"
            f" {USE_INSTEAD}"
        )
    if scheme not in STORE_SCHEMES:
        return f"names no store MLflow tracks in ({scheme}://): {USE_INSTEAD}"
    if scheme == "sqlite" and uri.split("?", 1)[0] in IN_MEMORY:
        return "is an in-memory store, which keeps nothing after the stage: name a file, sqlite:///<path>/mlflow.db"
    return None

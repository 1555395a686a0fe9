"""The shared MLflow tracking server of a team: its command line and a reachability check of its store.

One server holds every run, metric, registered model and (proxied) artifact of the team; clients
(the pipeline's stages, `gat promote`, `gat predict --model models:/...`) only need
MLFLOW_TRACKING_URI=http://host:port. Its store is a SQL database given by URI: PostgreSQL for a
team, the project's SQLite file by default. Artifacts go through the server (`--serve-artifacts`)
to `artifacts_destination`, so clients need no access to that storage.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

CONNECT_TIMEOUT_S = 5


class ServerError(RuntimeError):
    """The server cannot start with this configuration; the message says why and what to do."""


@dataclass(frozen=True)
class ServerConfig:
    """How `gat server` runs MLflow."""

    backend_store_uri: str
    artifacts_destination: str
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 2
    allowed_hosts: str | None = None


def masked(uri: str) -> str:
    """`uri` with any password replaced by ***, for messages and logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def server_command(config: ServerConfig) -> list[str]:
    """The `mlflow server` command line for `config` (artifacts proxied through the server)."""
    cmd = [sys.executable, "-m", "mlflow", "server"]
    cmd += ["--backend-store-uri", config.backend_store_uri]
    cmd += ["--serve-artifacts", "--artifacts-destination", config.artifacts_destination]
    cmd += ["--host", config.host, "--port", str(config.port), "--workers", str(config.workers)]
    if config.allowed_hosts:
        cmd += ["--allowed-hosts", config.allowed_hosts]
    return cmd


def check_backend(uri: str) -> None:
    """ServerError unless the SQL store at `uri` can be reached (before MLflow starts its workers)."""
    scheme = urlsplit(uri).scheme.split("+")[0]
    if scheme == "sqlite":
        return  # created on first use
    if scheme not in ("postgresql", "mysql", "mssql"):
        raise ServerError(
            f"--backend-store-uri {masked(uri)}: use a SQL database URI, "
            "e.g. postgresql://user:password@host:5432/mlflow or sqlite:///path/mlflow.db"
        )
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(uri, connect_args=connect_args(scheme))
        with engine.connect():
            pass
    except ModuleNotFoundError as err:
        raise ServerError(f"the {scheme} driver is not installed ({err.name}): pip install it") from err
    except sqlalchemy.exc.SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise ServerError(
            f"cannot connect to {masked(uri)}: {reason}. Is the database server running, "
            "does the database exist (createdb), and are user and password right?"
        ) from err


def connect_args(scheme: str) -> dict:
    """Driver options: fail within seconds instead of hanging on an unreachable host."""
    return {"connect_timeout": CONNECT_TIMEOUT_S} if scheme in ("postgresql", "mysql") else {}

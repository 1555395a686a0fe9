"""The shared MLflow tracking server of a team: its command line, environment and store check.

One server holds every run, metric, registered model and (proxied) artifact of the team; clients
(the pipeline's stages, `gat promote`, `gat predict --model models:/...`) need
MLFLOW_TRACKING_URI=http://host:port, and MLFLOW_TRACKING_USERNAME / _PASSWORD where the server
authenticates (tracking/server_auth.py). Its store is a SQL database given by URI: PostgreSQL for
a team, the project's SQLite file by default. Artifacts go through the server
(`--serve-artifacts`) to `artifacts_destination`, so clients need no access to that storage.

Secrets never go on a command line, where every user of the machine reads them (`ps`): the store
URI reaches `mlflow server` (and its workers) through the environment, which only the same user
and root can read, and a URI given as a command-line option must not hold a password.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

CONNECT_TIMEOUT_S = 5
BACKEND_URI_ENV = "MLFLOW_BACKEND_STORE_URI"  # MLflow's own name, read by `mlflow server`


class ServerError(RuntimeError):
    """The server cannot start with this configuration; the message says why and what to do."""


@dataclass(frozen=True)
class ServerConfig:
    """How `gat server` runs MLflow; `auth_config` is the basic-auth ini when it authenticates."""

    backend_store_uri: str
    artifacts_destination: str
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 2
    allowed_hosts: str | None = None
    auth_config: Path | None = None


def masked(uri: str) -> str:
    """`uri` with any password replaced by ***, for messages and logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def refuse_password_in_argv(uri: str) -> None:
    """ServerError when a URI typed as a command-line option holds a password."""
    if urlsplit(uri).password is not None:
        raise ServerError(
            f"--backend-store-uri {masked(uri)} holds a password, which every user of this machine "
            f"reads in `ps`: give the URI without it and keep the password in ~/.pgpass (chmod 600), "
            f"or export {BACKEND_URI_ENV}=<the full URI> instead of the option"
        )


def is_loopback(host: str) -> bool:
    """Whether binding `host` serves this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def server_command(config: ServerConfig) -> list[str]:
    """The `mlflow server` command line for `config`: no secrets (see `server_env`)."""
    cmd = [sys.executable, "-m", "mlflow", "server"]
    cmd += ["--serve-artifacts", "--artifacts-destination", config.artifacts_destination]
    cmd += ["--host", config.host, "--port", str(config.port), "--workers", str(config.workers)]
    if config.allowed_hosts:
        cmd += ["--allowed-hosts", config.allowed_hosts]
    if config.auth_config is not None:
        cmd += ["--app-name", "basic-auth"]
    return cmd


def server_env(config: ServerConfig, secret_key: str | None = None) -> dict[str, str]:
    """The environment entries `mlflow server` needs beside its command line (the secrets)."""
    env = {BACKEND_URI_ENV: config.backend_store_uri}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no GenAI job runner processes
    if config.auth_config is not None:
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(config.auth_config)
        if secret_key is not None:
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secret_key  # the same in every worker (CSRF)
    return env


def check_backend(uri: str) -> None:
    """ServerError unless the SQL store at `uri` can be reached (before MLflow starts its workers)."""
    scheme = urlsplit(uri).scheme.split("+")[0]
    if scheme == "sqlite":
        return  # created on first use
    if scheme not in ("postgresql", "mysql", "mssql"):
        raise ServerError(
            f"backend store {masked(uri)}: use a SQL database URI, "
            "e.g. postgresql://user@host:5432/mlflow or sqlite:///path/mlflow.db"
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
            "does the database exist (createdb), and are user and password (~/.pgpass) right?"
        ) from err


def connect_args(scheme: str) -> dict:
    """Driver options: fail within seconds instead of hanging on an unreachable host."""
    return {"connect_timeout": CONNECT_TIMEOUT_S} if scheme in ("postgresql", "mysql") else {}

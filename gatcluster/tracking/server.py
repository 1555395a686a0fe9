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
import re
import sqlite3
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from gatcluster.path_kind import Kind, creation_problem, look_at, not_a_folder
from gatcluster.tracking.store_uri import IN_MEMORY, masked, sqlite_file_problem, sqlite_path

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


def split_uri(uri: str) -> SplitResult:
    """`uri` split into its parts; a ServerError when it cannot be (an unclosed `[` of IPv6)."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - parsed on access: a port that is not a number raises here
    except ValueError as err:
        raise ServerError(f"{uri.split('://', 1)[0]}://... is not a valid URI ({err})") from err
    return parts


def refuse_password_in_argv(uri: str) -> None:
    """ServerError when a URI typed as a command-line option holds a password (user:password@, or
    a password=... option)."""
    parts = split_uri(uri)
    if parts.password is not None or re.search(r"(?i)(^|&)password=", parts.query):
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
        cmd += ["--allowed-hosts", allowed_host_patterns(config.allowed_hosts)]
    if config.auth_config is not None:
        cmd += ["--app-name", "basic-auth"]
    return cmd


def allowed_host_patterns(names: str) -> str:
    """MLflow's --allowed-hosts value for the comma-separated host names clients use: each name with
    any port (clients send `Host: name:5000`, and MLflow compares the whole header), beside MLflow's
    own defaults (localhost and private IPs), which a bare --allowed-hosts would replace: a name
    given for the team then locked out `gat` on the server's own machine. A name given with a port,
    and `*` (any host), are passed as given."""
    from mlflow.server.security_utils import get_default_allowed_hosts

    given = [name.strip() for name in names.split(",") if name.strip()]
    if "*" in given:
        return "*"
    patterns = list(get_default_allowed_hosts())
    for name in map(bracketed_if_ipv6, map(str.lower, given)):  # browsers send Host in lower case
        patterns.append(name)
        if not re.search(r"(^[^\[]*:|\]:)", name):  # no port: host:port or [v6]:port
            patterns.append(name.replace("[", "[[]", 1) + ":*")  # `[` opens a class in fnmatch
    return ",".join(dict.fromkeys(patterns))


def bracketed_if_ipv6(name: str) -> str:
    """`name` as a Host header carries it: a bare IPv6 address in brackets, anything else as is."""
    try:
        return f"[{name}]" if ipaddress.ip_address(name).version == 6 else name
    except ValueError:
        return name


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
    scheme = split_uri(uri).scheme.split("+")[0]
    if scheme == "sqlite":
        if problem := sqlite_store_problem(uri):
            raise ServerError(f"the MLflow store at {uri} cannot be opened: {problem}")
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


def sqlite_store_problem(uri: str) -> str | None:
    """Why the SQLite file behind a `sqlite:///` store cannot be served (in memory, a folder, not
    a database, locked, unreadable, cannot be created), or None: another kind of store, or a file
    MLflow can open or create. Asked before a server starts: its workers would fail with a
    traceback (or retry for minutes) after the URL was already shown."""
    if uri.split("?", 1)[0] in IN_MEMORY:  # `sqlite://` too: each server worker its own empty store
        return "an in-memory store keeps nothing: name a file, sqlite:///<path>/mlflow.db"
    if not uri.startswith("sqlite:///"):
        return None
    path = sqlite_path(uri)
    if problem := sqlite_file_problem(path):
        return problem
    if not path.is_file():
        return None  # SQLite creates it
    try:
        # Read-write (without creating): a read-only connection cannot roll back the journal a
        # killed writer left, which MLflow's own connection does.
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=5)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as err:
        return str(err)
    return None


def writable_folder_problem(path: Path) -> str | None:
    """Why `path` cannot be (or become) a folder to write in, or None."""
    looked = look_at(path)
    if looked.kind is Kind.FOLDER:
        return None
    if looked.kind is Kind.MISSING:
        return creation_problem(path)
    return not_a_folder(path, looked)

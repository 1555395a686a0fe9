"""Whether a remote tracking server or database answers at all, asked in seconds rather than minutes.

MLflow's HTTP client retries a refused connection with exponential back-off (seven tries by
default): a command pointed at a server that is down said nothing for eight minutes and then
blamed the registry. Its SQL store retries creating a database engine ten times (about 100 s of
silence for a PostgreSQL server that is down). One TCP connection with a short timeout tells the
cases apart first.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from gatcluster.tracking.store_uri import is_server_uri, masked, server_url_problem

DEFAULT_PORTS = {"http": 80, "https": 443}
DATABASE_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}
CONNECT_SECONDS = 5.0


class ServerUnreachable(ConnectionError):
    """The tracking server's host and port take no connection; the message says which and why."""


def check_server_answers(tracking_uri: str, timeout: float = CONNECT_SECONDS) -> None:
    """Connect once to an http(s) tracking URI's host and port; ServerUnreachable if that fails.

    A database URL (postgresql://, mysql://, mssql://, with or without a driver: `+psycopg`) is
    asked the same of its host and port; one without a host (a local socket) and a SQLite file are
    not. An http(s) URI that names no host, or that cannot be parsed, is a ServerUnreachable too.
    """
    shown = masked(tracking_uri)
    if (address := database_address(tracking_uri)) is not None:
        advice = "start it, or point MLFLOW_TRACKING_URI at a store that answers"
        connect_once(address, timeout, f"the database at {shown}", advice)
        return
    if not is_server_uri(tracking_uri):
        return
    if problem := server_url_problem(tracking_uri):
        raise ServerUnreachable(f"MLFLOW_TRACKING_URI {shown} {problem}")
    parts = urlsplit(tracking_uri)
    port = parts.port if parts.port is not None else DEFAULT_PORTS[parts.scheme.lower()]
    advice = "start it (`gat server`) or point MLFLOW_TRACKING_URI at a running one"
    connect_once((parts.hostname, port), timeout, f"the tracking server at {shown}", advice)


def connect_once(address: tuple[str, int], timeout: float, what: str, advice: str) -> None:
    """One TCP connection to `address`; ServerUnreachable "`what` does not answer (why): `advice`"."""
    try:
        with socket.create_connection(address, timeout=timeout):
            pass
    except OSError as err:
        reason = f"no answer within {timeout:g} s" if isinstance(err, TimeoutError) else err.strerror
        raise ServerUnreachable(f"{what} does not answer ({reason or err}): {advice}") from err


def database_address(uri: str) -> tuple[str, int] | None:
    """The (host, port) a database URL connects to, or None: another kind of URI, a database on a
    local socket (no host), or one that cannot be parsed (MLflow then says what is wrong)."""
    try:
        parts = urlsplit(uri.strip())
        port = parts.port
    except ValueError:
        return None
    dialect = parts.scheme.lower().split("+", 1)[0]
    if dialect not in DATABASE_PORTS or not parts.hostname:
        return None
    return parts.hostname, port if port is not None else DATABASE_PORTS[dialect]

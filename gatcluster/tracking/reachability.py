"""Whether a remote tracking server answers at all, asked in seconds rather than minutes.

MLflow's HTTP client retries a refused connection with exponential back-off (seven tries by
default): a command pointed at a server that is down said nothing for eight minutes and then
blamed the registry. One TCP connection with a short timeout tells the two apart first.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from gatcluster.tracking.store_uri import is_server_uri, masked, server_url_problem

DEFAULT_PORTS = {"http": 80, "https": 443}
CONNECT_SECONDS = 5.0


class ServerUnreachable(ConnectionError):
    """The tracking server's host and port take no connection; the message says which and why."""


def check_server_answers(tracking_uri: str, timeout: float = CONNECT_SECONDS) -> None:
    """Connect once to an http(s) tracking URI's host and port; ServerUnreachable if that fails.

    Other URIs (a SQLite file, a database URL for `gat server`) are not servers: nothing to check.
    An http(s) URI that names no host, or that cannot be parsed, is a ServerUnreachable too.
    """
    if not is_server_uri(tracking_uri):
        return
    shown = masked(tracking_uri)
    if problem := server_url_problem(tracking_uri):
        raise ServerUnreachable(f"MLFLOW_TRACKING_URI {shown} {problem}")
    parts = urlsplit(tracking_uri)
    port = parts.port if parts.port is not None else DEFAULT_PORTS[parts.scheme.lower()]
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as err:
        reason = f"no answer within {timeout:g} s" if isinstance(err, TimeoutError) else err.strerror
        raise ServerUnreachable(
            f"the tracking server at {shown} does not answer ({reason or err}): start it "
            "(`gat server`) or point MLFLOW_TRACKING_URI at a running one"
        ) from err

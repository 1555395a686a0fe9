"""Whether a remote tracking server answers at all, asked in seconds rather than minutes.

MLflow's HTTP client retries a refused connection with exponential back-off (seven tries by
default): a command pointed at a server that is down said nothing for eight minutes and then
blamed the registry. One TCP connection with a short timeout tells the two apart first.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
CONNECT_SECONDS = 5.0


class ServerUnreachable(ConnectionError):
    """The tracking server's host and port take no connection; the message says which and why."""


def check_server_answers(tracking_uri: str, timeout: float = CONNECT_SECONDS) -> None:
    """Connect once to an http(s) tracking URI's host and port; ServerUnreachable if that fails.

    Other URIs (a SQLite file, a database URL for `gat server`) are not servers: nothing to check.
    An http(s) URI that names no host, or that cannot be parsed, is a ServerUnreachable too.
    """
    try:
        parts = urlsplit(tracking_uri)
        if parts.scheme not in DEFAULT_PORTS:
            return
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as err:  # an unclosed [IPv6 bracket, a port that is not a number or too large
        raise ServerUnreachable(f"MLFLOW_TRACKING_URI {tracking_uri} is not a server URL: {err}") from err
    if not parts.hostname:  # MLflow would retry requests to no host for minutes
        raise ServerUnreachable(
            f"MLFLOW_TRACKING_URI {tracking_uri} names no host: write it as {parts.scheme}://host:port"
        )
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as err:
        reason = f"no answer within {timeout:g} s" if isinstance(err, TimeoutError) else err.strerror
        raise ServerUnreachable(
            f"the tracking server at {tracking_uri} does not answer ({reason or err}): start it "
            "(`gat server`) or point MLFLOW_TRACKING_URI at a running one"
        ) from err

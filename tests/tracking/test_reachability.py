"""Whether a tracking server answers: one connection in seconds, and URIs that name no server."""

import socket

import pytest

from gatcluster.tracking.reachability import ServerUnreachable, check_server_answers
from gatcluster.tracking.store_uri import masked


def test_a_port_nothing_listens_on_is_unreachable_and_a_listening_one_answers():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        check_server_answers(uri, timeout=2)
    with pytest.raises(ServerUnreachable, match=f"the tracking server at {uri} does not answer"):
        check_server_answers(uri, timeout=2)


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        ("http://[::1", "http://*** is not a server URL: Invalid IPv6 URL"),  # unreadable: shown masked
        ("http://localhost:99999", "is not a server URL: Port out of range"),
        ("https://localhost:web", "is not a server URL: Port could not be cast"),
        ("http://", "http:// names no host: write it as http://host:port"),
        ("https://:5000/", "names no host: write it as https://host:port"),
    ],
)
def test_a_malformed_server_uri_is_named_at_once(uri, said):
    # these were a ValueError traceback, or minutes of MLflow's retries against no host
    with pytest.raises(ServerUnreachable) as caught:
        check_server_answers(uri, timeout=2)
    assert str(caught.value).startswith(f"MLFLOW_TRACKING_URI {masked(uri)} ") and said in str(caught.value)


@pytest.mark.parametrize(
    "uri", ["sqlite:///mlflow.db", "postgresql://u@/m?host=/run/postgresql", "file:///tmp/x", "mlruns"]
)
def test_stores_that_are_not_servers_are_not_checked(uri):
    check_server_answers(uri, timeout=2)  # a SQLite file, a database on a local socket, files


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg", "mysql+pymysql"])
def test_a_database_that_takes_no_connection_is_named_in_seconds(scheme):
    # MLflow's SQL store retried for about 100 s in silence before saying anything.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        uri = f"{scheme}://u:S3cret@127.0.0.1:{server.getsockname()[1]}/mlflow"
        check_server_answers(uri, timeout=2)
    with pytest.raises(ServerUnreachable) as caught:
        check_server_answers(uri, timeout=2)
    said = str(caught.value)
    assert said.startswith(f"the database at {scheme}://u:***@127.0.0.1:") and "does not answer" in said
    assert "S3cret" not in said


def test_a_password_in_the_url_is_never_shown():
    with pytest.raises(ServerUnreachable) as caught:
        check_server_answers("https://alice:S3cret@127.0.0.1:99999", timeout=2)
    assert "S3cret" not in str(caught.value) and "alice:***@" in str(caught.value)

"""How long a `gat` command that a person waits on lets MLflow's HTTP client retry a failing server.

MLflow retries a request that fails with a 5xx status seven times with back-off (its default suits
a training run logging through a rate-limited server): `gat promote` against a server answering 500
said nothing for four minutes. The registry commands (`gat promote`, `gat info` and `gat predict`
with a models:/ URI, `gat user add`) give up after two retries, within seconds. A value the user
set in MLFLOW_HTTP_REQUEST_MAX_RETRIES or MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR is kept.
"""

from __future__ import annotations

from collections.abc import MutableMapping

INTERACTIVE_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def retry_briefly(environ: MutableMapping[str, str]) -> None:
    """Set MLflow's HTTP retry count and back-off for an interactive command, unless already set."""
    for name, value in INTERACTIVE_RETRIES.items():
        environ.setdefault(name, value)

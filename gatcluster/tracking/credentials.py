"""Who MLflow authenticates as: the credentials its client sends, and how a user sets them.

MLflow reads MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD and, where those are unset, the
`[mlflow]` section of ~/.mlflow/credentials. Error messages and the admin check of `gat user add`
ask MLflow for the same pair, so a user of the credentials file is neither refused nor misnamed.
MLflow is imported only when asked: the stages import `CredentialsUnreadable` to report it.
"""

from __future__ import annotations

import configparser

from gatcluster.tracking.store_uri import is_server_uri

# How to give MLflow a user, for error messages.
SET_CREDENTIALS = "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials)"
# What MLflow's reading of the file raises where it cannot: a file without an `[mlflow]`-style
# section header, a `%` that configparser would interpolate, text not in the locale's encoding.
UNREADABLE = (configparser.Error, UnicodeDecodeError)


class CredentialsUnreadable(ValueError):
    """~/.mlflow/credentials is there but cannot be read; the message says why and what to do."""


def sent_credentials() -> tuple[str | None, str | None]:
    """The user name and password MLflow's client sends to a tracking server (None where unset, or
    where a damaged credentials file cannot be read: MLflow then fails on its own account)."""
    from mlflow.utils.credentials import read_mlflow_creds

    try:
        creds = read_mlflow_creds()
    except UNREADABLE:
        return None, None
    return creds.username or None, creds.password or None


def check_credentials_file(tracking_uri: str) -> None:
    """CredentialsUnreadable where MLflow could not read ~/.mlflow/credentials for a request to the
    tracking server at `tracking_uri`. It reads the file before every request to an http(s) server,
    environment variables set or not, and its configparser or decode error would end the command in
    a traceback. Other stores (a SQLite file) never read it: nothing to check."""
    if not is_server_uri(tracking_uri):
        return
    from mlflow.utils.credentials import read_mlflow_creds

    try:
        read_mlflow_creds()
    except UNREADABLE as err:
        raise CredentialsUnreadable(
            f"~/.mlflow/credentials cannot be read ({unreadable_reason(err)}), and MLflow reads it"
            " before every request to the tracking server: fix it (an [mlflow] section with"
            " mlflow_tracking_username and mlflow_tracking_password; a % in a value is written %%)"
            " or move it away"
        ) from err


def unreadable_reason(err: Exception) -> str:
    """Why the credentials file cannot be read, in words that never quote a value (a password)."""
    if isinstance(err, configparser.InterpolationError):  # its message quotes the value after the %
        return f"a % in {err.option} of [{err.section}] must be written %%"
    said = str(err).strip()
    # configparser's first line names the problem; the lines after it may quote the file's text.
    return said.splitlines()[0] if said else type(err).__name__

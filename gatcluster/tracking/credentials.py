"""Who MLflow authenticates as: the credentials its client sends, and how a user sets them.

MLflow reads MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD and, where those are unset, the
`[mlflow]` section of ~/.mlflow/credentials. Error messages and the admin check of `gat user add`
ask MLflow for the same pair, so a user of the credentials file is neither refused nor misnamed.
"""

from __future__ import annotations

import configparser

from mlflow.utils.credentials import read_mlflow_creds

# How to give MLflow a user, for error messages.
SET_CREDENTIALS = "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials)"


def sent_credentials() -> tuple[str | None, str | None]:
    """The user name and password MLflow's client sends to a tracking server (None where unset, or
    where a damaged credentials file cannot be read: MLflow then fails on its own account)."""
    try:
        creds = read_mlflow_creds()
    except configparser.Error:  # a section-less file, or a `%` that configparser would interpolate
        return None, None
    return creds.username or None, creds.password or None

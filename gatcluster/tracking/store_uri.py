"""What MLFLOW_TRACKING_URI names, told from its text and, for a SQLite store, its file (no
MLflow import, no connection).

Which stores MLflow can track runs in (the check stage and `gat check` ask before any stage sets
its outputs aside: a URI MLflow cannot use used to stop the train stage only after `dvc repro` had
removed the previous model and curves), whether a URI is a tracking server's and written as one,
and the URI as messages show it, with any password hidden.
"""

from __future__ import annotations

import os
import re
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from gatcluster.path_kind import Kind, creation_problem, look_at
from gatcluster.path_text import shown_path

SERVER_SCHEMES = ("http", "https")
# Schemes of the stores MLflow tracks in (the part before any SQLAlchemy `+driver`), beside those
# plugins register; a plain path or a file: URI is its file store, which MLflow 3 writes only when
# MLFLOW_ALLOW_FILE_STORE is set. `databricks` and `uc` are also whole URIs on their own.
STORE_SCHEMES = (
    *SERVER_SCHEMES,
    "sqlite",
    "postgresql",
    "mysql",
    "mssql",
    "databricks",
    "databricks-uc",
    "uc",
)
USE_INSTEAD = (
    "use sqlite:///<path>/mlflow.db, a server (http://host:port) or a database URL (postgresql://...)"
)
IN_MEMORY = ("sqlite://", "sqlite:///", "sqlite:///:memory:")


def file_store_allowed(value: str | None) -> bool:
    """MLFLOW_ALLOW_FILE_STORE's value as MLflow reads a boolean variable ("true" or "1")."""
    return (value or "").strip().lower() in ("true", "1")


def uri_scheme(uri: str) -> str:
    """The store kind `uri` names: its scheme without a `+driver`, the whole URI for MLflow's bare
    `databricks` / `uc` forms, "" for a plain path."""
    if "://" not in uri:
        return uri.lower() if uri.lower() in STORE_SCHEMES else ""
    return uri.split("://", 1)[0].split("+", 1)[0].lower()


def is_server_uri(uri: str) -> bool:
    """Whether `uri` is a tracking server's (http or https; a malformed one included)."""
    return uri_scheme(uri.strip()) in SERVER_SCHEMES


def server_url_problem(uri: str) -> str | None:
    """Why an http(s) `uri` names no server to connect to (words that follow the URI in a
    message); None where it names one. MLflow retried a URL without a host for minutes."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - parsed on access: a port that is no number, or out of range, raises
    except ValueError as err:  # also an unclosed [IPv6 bracket
        return f"is not a server URL: {err}"
    if not parts.hostname:
        return f"names no host: write it as {parts.scheme}://host:port"
    return None


def tracking_uri_problem(uri: str, allow_file_store: bool = False) -> str | None:
    """Why MLflow could not track runs in `uri`, in words that follow the URI in a message; None
    where it can. `allow_file_store`: MLFLOW_ALLOW_FILE_STORE is true."""
    scheme = uri_scheme(uri)
    if scheme in ("", "file"):
        if allow_file_store:
            return None
        return (
            "is a file store (mlruns/), which MLflow 3 writes only with MLFLOW_ALLOW_FILE_STORE=true:"
            f" {USE_INSTEAD}"
        )
    if scheme in SERVER_SCHEMES:
        return server_url_problem(uri)
    if scheme not in STORE_SCHEMES and scheme not in plugin_schemes():
        return f"names no store MLflow tracks in ({scheme}://): {USE_INSTEAD}"
    if scheme == "sqlite" and uri.split("?", 1)[0] in IN_MEMORY:
        return "is an in-memory store, which keeps nothing once its process ends: name a file, sqlite:///<path>/mlflow.db"
    if problem := sqlite_uri_file_problem(uri):
        return f"cannot be used: {problem}"  # MLflow retried such a file for two minutes
    return None


def sqlite_uri_file_problem(uri: str) -> str | None:
    """For a `sqlite:///` URI naming a file, why no database can be opened or made there (a clause
    naming the path); None for other URIs, in-memory stores and files SQLite can use."""
    if uri_scheme(uri) != "sqlite" or uri.split("?", 1)[0] in IN_MEMORY:
        return None
    return sqlite_file_problem(sqlite_path(uri))


def sqlite_path(uri: str) -> Path:
    """The database file of a `sqlite:///` URI (SQLAlchemy options after '?' left out)."""
    return Path(uri.split("://", 1)[1].removeprefix("/").split("?", 1)[0])


def sqlite_file_problem(path: Path) -> str | None:
    """Why no SQLite database can be opened or made at `path`, a clause naming it; None where one
    can (a file's contents are the store's to judge, when it is opened)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:  # SQLAlchemy cannot pass such a name on (a traceback in its workers)
        return f"{shown_path(path)} is not UTF-8 text: rename the file or its folder"
    looked = look_at(path)
    if looked.kind is Kind.BROKEN_LINK:  # SQLite makes the database where the link points
        target = Path(os.path.realpath(path))  # a loop of links resolves to itself
        if look_at(target).kind is Kind.MISSING and look_at(target.parent).kind is Kind.FOLDER:
            return None if os.access(target.parent, os.W_OK) else f"{target.parent} is not writable"
        return f"{path} is a broken symlink"  # a loop, or a link into a folder that is not there
    if looked.kind in (Kind.FILE, Kind.MISSING):
        return None if looked.kind is Kind.FILE else creation_problem(path)  # SQLite makes a missing one
    if looked.kind is Kind.FOLDER:
        return f"{path} is a folder, not a database file"
    if looked.kind is Kind.UNREADABLE:
        return f"{path} cannot be looked up ({looked.reason})"
    return f"{path} is not a regular file"


def plugin_schemes() -> set[str]:
    """The schemes installed MLflow plugins register tracking stores for (e.g. azureml)."""
    return {point.name for point in entry_points(group="mlflow.tracking_store")}


def masked(uri: str) -> str:
    """`uri` with any password replaced by *** (the user:password@ part and a password=... option),
    for messages and logs."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return f"{uri.split('://', 1)[0]}://***"  # unreadable: show nothing that may be a secret
    if parts.password is None and not re.search(r"(?i)(^|&)password=", parts.query):
        return uri  # as given: urlunsplit would rewrite sqlite://// paths
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))

"""MLflow's basic authentication for `gat server`: its private files and the admin user.

The server keeps users, password hashes and permissions in a SQLite file of its own, beside an
ini file that points MLflow at it and the secret key that signs the web UI's forms. All three are
private (0600 in a 0700 folder). Every authenticated user reads everything (`default_permission
READ`); writers get EDIT through a role (tracking/users.py); only the creator of an experiment or
registered model, and admins, may delete it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"  # MLflow's own name for the bootstrap password
MAX_PASSWORD_BYTES = 1024  # servers refuse request headers of a few kB
MIN_PASSWORD_LENGTH = 12  # MLflow's password policy
AUTH_CACHE_TTL_S = 60


class AuthSetupError(RuntimeError):
    """Authentication cannot be set up; the message says why and what to do."""


@dataclass(frozen=True)
class AuthFiles:
    """The private files of an authenticating server, in one folder."""

    folder: Path

    @property
    def config(self) -> Path:
        return self.folder / "basic_auth.ini"

    @property
    def secret_key(self) -> Path:
        return self.folder / "secret_key"

    @property
    def database(self) -> Path:
        return self.folder / "users.db"

    @property
    def database_uri(self) -> str:
        return f"sqlite:///{self.database}"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by this user only, never briefly by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)  # an older file may have had a wider mode


def auth_config_text(files: AuthFiles) -> str:
    """MLflow's basic-auth ini for `files`."""
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {files.database_uri}\n"
        f"admin_username = {ADMIN_USERNAME}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Checking a password is a deliberately slow hash (PBKDF2); without this cache every request
        # pays it, and a training run makes hundreds. A changed or deleted password takes effect at
        # once on the worker that changed it, on the others within the TTL.
        f"auth_cache_ttl_seconds = {AUTH_CACHE_TTL_S}\n"
    )


def prepare_auth_files(folder: Path) -> tuple[AuthFiles, str]:
    """Create the private folder, ini and secret key (kept across restarts); (files, secret key)."""
    files = AuthFiles(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    if not files.secret_key.is_file():
        write_private(files.secret_key, secrets.token_urlsafe(32))
    if not files.database.is_file():
        write_private(files.database, "")  # SQLite takes an empty file as a new database; 0600 from the start
    write_private(files.config, auth_config_text(files))
    return files, files.secret_key.read_text().strip()


def _user_store(database_uri: str):  # noqa: ANN202 (MLflow's store class is imported lazily)
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(database_uri)
    return store


def admin_exists(files: AuthFiles) -> bool:
    """Whether the server's user store already holds the admin user."""
    return _user_store(files.database_uri).has_user(ADMIN_USERNAME, use_primary=True)


def check_password(password: str, whose: str) -> None:
    """AuthSetupError unless `password` meets MLflow's policy."""
    if len(password) < MIN_PASSWORD_LENGTH or not password.strip():
        raise AuthSetupError(
            f"{whose} password must be at least {MIN_PASSWORD_LENGTH} characters, not only spaces"
        )
    if len(password.encode()) > MAX_PASSWORD_BYTES:  # sent in every request's Authorization header
        raise AuthSetupError(f"{whose} password must be at most {MAX_PASSWORD_BYTES} bytes")


def create_admin(files: AuthFiles, password: str) -> None:
    """Create the admin user with `password` (first start of an authenticating server)."""
    check_password(password, f"the {ADMIN_USERNAME} user's")
    _user_store(files.database_uri).create_user(ADMIN_USERNAME, password, is_admin=True)

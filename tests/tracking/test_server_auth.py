"""The private files and admin user of an authenticating `gat server`."""

from __future__ import annotations

import configparser
import stat

import pytest

from gatcluster.tracking.server_auth import (
    ADMIN_USERNAME,
    AuthSetupError,
    admin_exists,
    create_admin,
    prepare_auth_files,
)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_auth_files_are_private_and_the_secret_key_survives_restarts(tmp_path):
    files, key = prepare_auth_files(tmp_path / "auth")
    assert mode(files.folder) == 0o700
    assert {p.name: mode(p) for p in files.folder.iterdir()} == {
        "basic_auth.ini": 0o600,
        "secret_key": 0o600,
        "users.db": 0o600,
    }
    again, same_key = prepare_auth_files(tmp_path / "auth")
    assert same_key == key and len(key) >= 32
    ini = configparser.ConfigParser()
    ini.read(files.config)
    assert ini["mlflow"]["default_permission"] == "READ"
    assert ini["mlflow"]["database_uri"] == f"sqlite:///{tmp_path / 'auth' / 'users.db'}"


def test_the_admin_is_created_once_with_a_password_that_meets_the_policy(tmp_path):
    files, _ = prepare_auth_files(tmp_path / "auth")
    assert not admin_exists(files)
    with pytest.raises(AuthSetupError, match="at least 12 characters"):
        create_admin(files, "short")
    create_admin(files, "a-long-admin-password")
    assert admin_exists(files)
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(files.database_uri)
    assert store.authenticate_user(ADMIN_USERNAME, "a-long-admin-password")
    assert store.get_user(ADMIN_USERNAME).is_admin
    assert mode(files.folder / "users.db") == 0o600


@pytest.mark.parametrize(
    ("password", "message"),
    [(" " * 12, "not only spaces"), ("x" * 1025, "at most 1024 bytes")],  # a header servers refuse
)
def test_a_password_no_one_could_use_is_refused(tmp_path, password, message):
    files, _ = prepare_auth_files(tmp_path / "auth")
    with pytest.raises(AuthSetupError, match=message):
        create_admin(files, password)


def test_a_server_without_users_is_named_when_adding_one():
    from mlflow.exceptions import MlflowException

    from gatcluster.tracking.users import explain

    refused = MlflowException(
        "API request to endpoint /api/2.0/mlflow/users/create failed with error code 404"
    )
    assert explain(refused, "bob").startswith(
        "the server has no users to add to: it runs without authentication"
    )

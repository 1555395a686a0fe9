"""The MLflow model registry: versions of the exported ONNX model, aliases, and `models:/` URIs.

Export adds a version of a registered model (`export.registered_model`) with the run, data checksum,
git commit and the evaluation metrics as version tags; `gat promote` moves an alias (`champion`) to
a version; `gat predict --model models:/NAME@ALIAS` (or `models:/NAME/3`) resolves the URI against
the registry (aliases are looked up on every call), downloads that version's ONNX file once into a
local cache (`model_cache`) and refuses a version that is not a GATCluster ONNX model.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gatcluster.serving.contract import ModelFileError, read_contract
from gatcluster.tracking.credentials import (
    SET_CREDENTIALS,
    CredentialsUnreadable,
    check_credentials_file,
    sent_credentials,
)
from gatcluster.tracking.model_cache import entry_folder, fill_entry, is_complete
from gatcluster.tracking.model_uri import ModelRef, RegistryError
from gatcluster.tracking.reachability import ServerUnreachable, check_server_answers
from gatcluster.tracking.store_uri import masked

MODEL_FILE = "model.onnx"  # what mlflow.onnx.log_model names the file inside the model folder
# The error codes of a registry lookup that found nothing: an unknown model or version, and an
# unknown alias (which MLflow's stores report as an invalid parameter).
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def register_version(
    client: MlflowClient, name: str, model_uri: str, model_id: str, run_id: str, tags: dict[str, str]
) -> int:
    """Add the logged model (`model_uri`, MLflow 3 `model_id`) as a new version of `name` (created
    if new); its number. A tracking server requires the model id beside a models:/m-... source."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(
                name, description="GATCluster ONNX models (gatcluster export stage)"
            )
        except MlflowException as err:  # another export (a queued experiment, a teammate) made it meanwhile
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    version = client.create_model_version(name, model_uri, run_id=run_id, tags=tags, model_id=model_id)
    return int(version.version)


def registry_client(tracking_uri: str) -> MlflowClient:
    """A client of the registry at `tracking_uri`: RegistryError in one line, at once, when a remote
    server does not answer, MLflow cannot read its credentials file, or cannot use the URI (an
    unknown scheme)."""
    # sqlite:////abs/path or sqlite:///relative, perhaps with SQLAlchemy options (?timeout=30)
    store = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    if tracking_uri.startswith("sqlite:///") and not Path(store).is_file():
        # MLflow would create an empty store there just to find no model in it.
        raise RegistryError(
            f"no MLflow store at {store}: run the pipeline (dvc repro) in this project first,"
            " or set MLFLOW_TRACKING_URI to the team's server"
        )
    try:
        check_server_answers(tracking_uri)
        check_credentials_file(tracking_uri)
        return MlflowClient(tracking_uri=tracking_uri)
    except (ServerUnreachable, CredentialsUnreadable) as err:
        raise RegistryError(str(err)) from err
    except MlflowException as err:
        raise RegistryError(f"MLFLOW_TRACKING_URI {masked(tracking_uri)}: {err.message}") from err


def access_refused(err: MlflowException, tracking_uri: str) -> RegistryError | None:
    """A RegistryError saying what to do when the server refused who we are; None otherwise."""
    if err.error_code == "UNAUTHENTICATED":
        user, password = sent_credentials()
        if user and password:  # given, and refused
            return RegistryError(
                f"the tracking server at {masked(tracking_uri)} refused user {user} with this password: check"
                " MLFLOW_TRACKING_PASSWORD, or ~/.mlflow/credentials where it is unset; an admin adds"
                " users with `gat user add`"
            )
        return RegistryError(
            f"the tracking server at {masked(tracking_uri)} requires a user: {SET_CREDENTIALS}; an admin"
            " adds users with `gat user add`"
        )
    if err.error_code == "PERMISSION_DENIED":
        user, _ = sent_credentials()
        return RegistryError(
            f"the tracking server at {masked(tracking_uri)} does not let {user or 'this user'} do this: "
            "a writer or the model's creator can (an admin adds writers with `gat user add`)"
        )
    return None


def resolve_version(client: MlflowClient, ref: ModelRef) -> int:
    """The version number a reference names now; RegistryError with the known versions otherwise."""
    return int(resolve_model_version(client, ref).version)


def resolve_model_version(client: MlflowClient, ref: ModelRef) -> ModelVersion:
    """The registered version a reference names now; RegistryError with the known versions otherwise."""
    try:
        if ref.alias is not None:
            return client.get_model_version_by_alias(ref.name, ref.alias)
        return client.get_model_version(ref.name, str(ref.version))
    except MlflowException as err:
        refused = access_refused(err, client.tracking_uri)
        if refused is not None:
            raise refused from err
        if err.error_code not in NOT_FOUND:  # a failing store is not a missing version
            raise RegistryError(
                f"the registry at {masked(client.tracking_uri)} failed: {err.message}"
            ) from err
        raise RegistryError(
            f"{ref} is not in the registry at {masked(client.tracking_uri)}: {known(client, ref.name)}"
        ) from err


def name_filter(name: str) -> str:
    """An MLflow search filter for the versions of `name`, quoted so that a quote in it is no clause."""
    quote = '"' if "'" in name else "'"
    return f"name={quote}{name}{quote}"


def known(client: MlflowClient, name: str) -> str:
    """What the registry holds under `name`: its versions and aliases, for error messages."""
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return f"no registered model named {name!r} (run `dvc repro` to export and register one)"
    try:
        versions = sorted(int(v.version) for v in client.search_model_versions(name_filter(name)))
    except MlflowException:  # a name MLflow's filters cannot quote (both kinds of quote in it)
        versions = []
    aliases = ", ".join(f"@{a} -> {v}" for a, v in sorted(model.aliases.items())) or "no aliases"
    return f"{name!r} has versions {versions or 'none'} and {aliases}"


def latest_version(client: MlflowClient, name: str) -> int:
    """The highest version number of `name`; RegistryError when it has none."""
    try:
        versions = [int(v.version) for v in client.search_model_versions(name_filter(name))]
    except MlflowException as err:
        refused = access_refused(err, client.tracking_uri)
        raise refused or RegistryError(f"cannot list the versions of {name!r}: {err.message}") from err
    if not versions:
        raise RegistryError(known(client, name))
    return max(versions)


def move_alias(client: MlflowClient, name: str, version: int, alias: str) -> int | None:
    """Point `alias` at `version` of `name`; the version it pointed at before (None if new)."""
    resolve_version(client, ModelRef(name, version, None))  # a clear error for an unknown version
    try:
        before: int | None = int(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        before = None
    try:
        client.set_registered_model_alias(name, alias, str(version))
    except MlflowException as err:
        raise access_refused(err, client.tracking_uri) or RegistryError(err.message) from err
    return before


def fetch_model(client: MlflowClient, ref: ModelRef, cache_root: Path) -> tuple[Path, int]:
    """The local ONNX file of the version `ref` names (downloaded on first use); (path, version)."""
    found = resolve_model_version(client, ref)
    version = int(found.version)
    identity = [ref.name, str(version), str(found.creation_timestamp), str(found.source)]
    folder = entry_folder(cache_root, client.tracking_uri, identity)
    if not is_complete(folder):
        label = f"models:/{ref.name}/{version}"
        try:
            fill_entry(folder, lambda into: download_version(client, ref.name, version, into))
        except MlflowException as err:
            raise RegistryError(f"cannot download {label}: {err.message}") from err
        except OSError as err:
            raise RegistryError(
                f"cannot write the model cache {cache_root} ({err.strerror or err}): set GAT_CACHE_DIR"
                " to a folder you can write"
            ) from err
    return folder / MODEL_FILE, version


def download_version(client: MlflowClient, name: str, version: int, into: Path) -> None:
    """Download the files of `version` of `name` into the folder `into` and check them."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    label = f"models:/{name}/{version}"
    try:
        # From where the version's files lie, not through a models:/ URI: MLflow reads one as a URL
        # with an optional @alias, so a name holding an '@' named another model there. The folder's
        # repository, as MLflow's own models:/ download does: its files land in `into` itself, and
        # a store that lost them leaves `into` empty (said below), not an error about one file.
        location = client.get_model_version_download_uri(name, str(version))
        repository = get_artifact_repository(location, tracking_uri=client.tracking_uri)
        repository.download_artifacts("", dst_path=str(into))
    except OSError as err:  # the connection or the artifact store, not the cache being written
        if err.filename is not None and Path(os.fsdecode(err.filename)).is_relative_to(into):
            raise
        raise RegistryError(f"cannot download {label}: {err.strerror or err}") from err
    if not any(into.iterdir()):
        raise RegistryError(
            f"the files of {label} are missing from its artifact store (a moved project, or a deleted"
            " mlartifacts/ folder): export it again (dvc repro -f export) or pick another version"
        )
    check_gatcluster_model(into / MODEL_FILE, label)


def check_gatcluster_model(path: Path, label: str) -> None:
    """RegistryError unless `path` is an ONNX file carrying the GATCluster model contract."""
    if not path.is_file():
        raise RegistryError(
            f"{label} holds no {MODEL_FILE}: it is not an ONNX model logged by gatcluster export"
        )
    try:
        read_contract(path)
    except ModelFileError as err:
        raise RegistryError(
            f"{label} is not a GATCluster ONNX model ({err}): pick a version gatcluster exported"
        ) from err

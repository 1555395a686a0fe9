"""The MLflow model registry: versions of the exported ONNX model, aliases, and `models:/` URIs.

Export adds a version of a registered model (`export.registered_model`) with the run, data checksum,
git commit and the evaluation metrics as version tags; `gat promote` moves an alias (`champion`) to
a version; `gat predict --model models:/NAME@ALIAS` (or `models:/NAME/3`) resolves the URI against
the registry, downloads that version's ONNX file once into a local cache (a version never changes,
so the cache is keyed by it; aliases are looked up on every call) and refuses a version that is not
a GATCluster ONNX model.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gatcluster.atomic import make_temp_dir, publish_dir
from gatcluster.serving.contract import ModelFileError, read_contract
from gatcluster.tracking.credentials import (
    SET_CREDENTIALS,
    CredentialsUnreadable,
    check_credentials_file,
    sent_credentials,
)
from gatcluster.tracking.model_uri import ModelRef, RegistryError
from gatcluster.tracking.reachability import ServerUnreachable, check_server_answers

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
        client.create_registered_model(name, description="GATCluster ONNX models (gatcluster export stage)")
    version = client.create_model_version(name, model_uri, run_id=run_id, tags=tags, model_id=model_id)
    return int(version.version)


def registry_client(tracking_uri: str) -> MlflowClient:
    """A client of the registry at `tracking_uri`: RegistryError in one line, at once, when a remote
    server does not answer, MLflow cannot read its credentials file, or cannot use the URI (an
    unknown scheme)."""
    store = tracking_uri.removeprefix("sqlite:///")  # sqlite:////abs/path or sqlite:///relative
    if store != tracking_uri and not Path(store).is_file():
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
        raise RegistryError(f"MLFLOW_TRACKING_URI {tracking_uri}: {err.message}") from err


def access_refused(err: MlflowException, tracking_uri: str) -> RegistryError | None:
    """A RegistryError saying what to do when the server refused who we are; None otherwise."""
    if err.error_code == "UNAUTHENTICATED":
        user, password = sent_credentials()
        if user and password:  # given, and refused
            return RegistryError(
                f"the tracking server at {tracking_uri} refused user {user} with this password: check"
                " MLFLOW_TRACKING_PASSWORD, or ~/.mlflow/credentials where it is unset; an admin adds"
                " users with `gat user add`"
            )
        return RegistryError(
            f"the tracking server at {tracking_uri} requires a user: {SET_CREDENTIALS}; an admin"
            " adds users with `gat user add`"
        )
    if err.error_code == "PERMISSION_DENIED":
        user, _ = sent_credentials()
        return RegistryError(
            f"the tracking server at {tracking_uri} does not let {user or 'this user'} do this: "
            "a writer or the model's creator can (an admin adds writers with `gat user add`)"
        )
    return None


def resolve_version(client: MlflowClient, ref: ModelRef) -> int:
    """The version number a reference names now; RegistryError with the known versions otherwise."""
    try:
        if ref.alias is not None:
            return int(client.get_model_version_by_alias(ref.name, ref.alias).version)
        return int(client.get_model_version(ref.name, str(ref.version)).version)
    except MlflowException as err:
        refused = access_refused(err, client.tracking_uri)
        if refused is not None:
            raise refused from err
        if err.error_code not in NOT_FOUND:  # a failing store is not a missing version
            raise RegistryError(f"the registry at {client.tracking_uri} failed: {err.message}") from err
        raise RegistryError(
            f"{ref} is not in the registry at {client.tracking_uri}: {known(client, ref.name)}"
        ) from err


def known(client: MlflowClient, name: str) -> str:
    """What the registry holds under `name`: its versions and aliases, for error messages."""
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return f"no registered model named {name!r} (run `dvc repro` to export and register one)"
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    aliases = ", ".join(f"@{a} -> {v}" for a, v in sorted(model.aliases.items())) or "no aliases"
    return f"{name!r} has versions {versions or 'none'} and {aliases}"


def latest_version(client: MlflowClient, name: str) -> int:
    """The highest version number of `name`; RegistryError when it has none."""
    try:
        versions = [int(v.version) for v in client.search_model_versions(f"name='{name}'")]
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


def cache_folder(cache_root: Path, tracking_uri: str, name: str, version: int) -> Path:
    """Where a version's files are kept: one folder per registry (by URI), model name and version."""
    registry = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
    return cache_root / "models" / registry / name / str(version)


def fetch_model(client: MlflowClient, ref: ModelRef, cache_root: Path) -> tuple[Path, int]:
    """The local ONNX file of the version `ref` names (downloaded on first use); (path, version)."""
    from mlflow.artifacts import download_artifacts

    version = resolve_version(client, ref)
    folder = cache_folder(cache_root, client.tracking_uri, ref.name, version)
    if (folder / MODEL_FILE).is_file():
        return folder / MODEL_FILE, version
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(folder.parent, f".{version}-")
    try:
        download_artifacts(
            artifact_uri=f"models:/{ref.name}/{version}",
            dst_path=str(tmp),
            tracking_uri=client.tracking_uri,
            registry_uri=client.tracking_uri,  # the project keeps its registry in its tracking store
        )
        check_gatcluster_model(tmp / MODEL_FILE, f"models:/{ref.name}/{version}")
        try:
            publish_dir(tmp, folder)  # complete or absent: an interrupted download leaves only a temp folder
        except OSError:
            if not (folder / MODEL_FILE).is_file():  # not a concurrent `gat predict` that won the race
                raise
    except MlflowException as err:
        raise RegistryError(f"cannot download models:/{ref.name}/{version}: {err.message}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / MODEL_FILE, version


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

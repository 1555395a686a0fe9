"""Users of an authenticating team server: add a writer or a reader through MLflow's auth API.

Writers hold the `writer` role: EDIT on every experiment and registered model, so they log runs
into the team's experiments and register model versions. Readers hold no role and keep the
server's default, READ. Neither may delete what others created. The caller authenticates as an
admin through MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials).
"""

from __future__ import annotations

from gatcluster.tracking.credentials import SET_CREDENTIALS
from gatcluster.tracking.server_auth import check_password

WRITER_ROLE = "writer"
WORKSPACE = "default"  # MLflow's workspace when the server does not enable workspaces
WRITER_GRANTS = (("experiment", "EDIT"), ("registered_model", "EDIT"))


class UserError(RuntimeError):
    """The server refused to add the user; the message says why."""


def writer_role_id(client) -> int:  # noqa: ANN001 (mlflow's AuthServiceClient, imported lazily)
    """The id of the `writer` role, created with its grants on first use."""
    for role in client.list_roles(WORKSPACE):
        if role.name == WRITER_ROLE:
            return role.id
    role = client.create_role(WORKSPACE, WRITER_ROLE, "logs runs and registers model versions")
    for resource_type, permission in WRITER_GRANTS:
        client.add_role_permission(role.id, resource_type, "*", permission)
    return role.id


def add_user(tracking_uri: str, username: str, password: str, read_only: bool) -> None:
    """Create `username` on the server at `tracking_uri`; a writer unless `read_only`."""
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    check_password(password, f"{username}'s")
    client = get_app_client("basic-auth", tracking_uri=tracking_uri)
    try:
        client.create_user(username, password)
        if not read_only:
            client.assign_role(username, writer_role_id(client))
    except MlflowException as err:
        raise UserError(explain(err, username)) from err


def explain(err: Exception, username: str) -> str:
    """One line for a refusal of the auth API."""
    code = getattr(err, "error_code", "")
    text = str(getattr(err, "message", err))
    if code == "RESOURCE_ALREADY_EXISTS" or "already exists" in text:
        return f"user {username} already exists"
    if "401" in text or code == "UNAUTHENTICATED":
        return f"the server refused the credentials: {SET_CREDENTIALS} to an admin's"
    if "403" in text or code == "PERMISSION_DENIED":
        return f"only an admin can add users: {SET_CREDENTIALS} to an admin's"
    if "404" in text or code == "ENDPOINT_NOT_FOUND":
        return (
            "the server has no users to add to: it runs without authentication (gat server --no-auth,"
            " or on a loopback address); start it with --auth"
        )
    return text.splitlines()[0] if text else type(err).__name__

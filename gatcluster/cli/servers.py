"""`gat server` and `gat user`: the team's MLflow tracking server, its users, and serving processes.

`gat server` binds 127.0.0.1 unless told otherwise; binding beyond it turns on MLflow's basic
authentication unless `--no-auth` says the network is trusted, and that is printed with what it
exposes. Secrets stay out of command lines (tracking/server.py).
"""

from __future__ import annotations

import errno
import getpass
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from gatcluster.cli.given import given_text
from gatcluster.cli.http_retries import retry_briefly
from gatcluster.cli.messages import fail, store_error
from gatcluster.exit_codes import EXIT_FAILED
from gatcluster.tracking.reachability import ServerUnreachable, check_server_answers

user_app = typer.Typer(
    help="Users of an authenticating `gat server` (run as an admin: MLFLOW_TRACKING_USERNAME/PASSWORD"
    " or ~/.mlflow/credentials).",
    no_args_is_help=True,
)


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port (binding it fails with EADDRINUSE); a host
    that cannot be bound at all (no such name, an address of another machine) is a usage error."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is free
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return True
            reason = err.strerror or str(err)
            raise fail(
                f"--host {host}: cannot listen there ({reason}); give an address of this machine"
            ) from err
    return False


def serve_until_stopped(cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Run a server command as this process's child (with `env` added) and stop it with us.

    The server gets its own process group (MLflow starts worker processes), and Ctrl-C or SIGTERM
    sent to this process stops the whole group, so no server outlives `gat` holding the port (the
    `gat` entry point turns SIGTERM into the KeyboardInterrupt Ctrl-C raises: `app.stop_like_ctrl_c`).
    """
    server_process = subprocess.Popen(cmd, start_new_session=True, env={**os.environ, **(env or {})})
    try:
        return server_process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server_process.poll() is None:
            os.killpg(server_process.pid, signal.SIGTERM)
            try:
                server_process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server_process.pid, signal.SIGKILL)
                server_process.wait()


def read_new_password(prompt: str, from_stdin: bool) -> str:
    """A password from one line of stdin, or typed twice at a hidden prompt (never from argv)."""
    if from_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")  # a line saved on Windows too
    if not sys.stdin.isatty():
        raise fail("no terminal to ask for the password: pipe it in with --password-stdin")
    first = getpass.getpass(f"{prompt}: ")
    if getpass.getpass(f"{prompt} again: ") != first:
        raise fail("the two passwords differ")
    return first


def admin_password_for_first_start() -> str:
    """The admin's password for a new user store, checked against MLflow's policy:
    MLFLOW_AUTH_ADMIN_PASSWORD or a prompt."""
    from gatcluster.tracking.server_auth import (
        ADMIN_PASSWORD_ENV,
        ADMIN_USERNAME,
        AuthSetupError,
        check_password,
    )

    password = os.environ.get(ADMIN_PASSWORD_ENV)
    if not password and not sys.stdin.isatty():
        raise fail(
            f"first start with authentication: set {ADMIN_PASSWORD_ENV} to the password of the "
            f"'{ADMIN_USERNAME}' user to create (read -rs {ADMIN_PASSWORD_ENV}; export {ADMIN_PASSWORD_ENV})",
            EXIT_FAILED,
        )
    if not password:
        password = read_new_password(f"password for the new '{ADMIN_USERNAME}' user of this server", False)
    try:
        check_password(password, f"the {ADMIN_USERNAME} user's")
    except AuthSetupError as err:
        raise fail(str(err), EXIT_FAILED) from err
    return password


def prepare_authentication(folder: Path) -> tuple[Path, str]:
    """The basic-auth ini and secret key in `folder`, with the admin user created on first start.

    The admin's password is asked for and checked before anything is written, so a first start
    refused for its password leaves no folder behind."""
    from gatcluster.tracking.server_auth import (
        ADMIN_USERNAME,
        AuthFiles,
        admin_exists,
        create_admin,
        prepare_auth_files,
    )

    files = AuthFiles(folder)
    with user_store_errors(folder):
        if folder.exists() and not folder.is_dir():  # said before a first start asks for a password
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
        first_start = not files.database.is_file() or not admin_exists(files)
    password = admin_password_for_first_start() if first_start else None
    with user_store_errors(folder):
        files, secret_key = prepare_auth_files(folder)
    if password is not None:
        create_admin(files, password)
        typer.echo(f"created the '{ADMIN_USERNAME}' user of this server (users in {folder})", err=True)
    return files.config, secret_key


@contextmanager
def user_store_errors(folder: Path) -> Iterator[None]:
    """A user store that cannot be used (a file where the folder should be, a damaged users.db) as
    one line; other errors pass."""
    try:
        yield
    except Exception as err:
        if not isinstance(err, OSError) and not store_error(err):
            raise
        reason = store_error(err) or err.strerror or str(err)
        raise fail(
            f"the user store in {folder} cannot be used ({reason}): move it away to start anew", EXIT_FAILED
        ) from err


def exposure_warning(url: str) -> str:
    """What `--no-auth` on a network interface gives away."""
    return (
        f"warning: --no-auth: anyone who can reach {url} can read, change and delete every run, "
        "artifact and registered model, and upload files to the artifact store"
    )


def server(
    backend_store_uri: Annotated[
        str | None,
        typer.Option(
            parser=given_text,
            help="SQL store without a password (postgresql://user@host:5432/db, password in ~/.pgpass); "
            "default: MLFLOW_BACKEND_STORE_URI, else the project's mlflow.db",
        ),
    ] = None,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(
            parser=given_text,
            help="Where the server keeps artifacts (folder or s3://...); default: the project's mlartifacts/",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(parser=given_text, help="Interface; 0.0.0.0 to serve the team's network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 5000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server worker processes.")] = 2,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(help="Host names clients use (comma-separated, any port); localhost, private IPs too."),
    ] = None,
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth/--no-auth",
            help="Require users and passwords (MLflow basic auth). Default: on unless --host is loopback.",
        ),
    ] = None,
) -> None:
    """Run the team's MLflow tracking server: SQL store, model registry, proxied artifacts, users."""
    from gatcluster.pipeline.layout import ProjectLayout
    from gatcluster.tracking.mlflow_runs import default_tracking_uri, main_worktree_root
    from gatcluster.tracking.server import (
        BACKEND_URI_ENV,
        ServerConfig,
        ServerError,
        check_backend,
        is_loopback,
        masked,
        refuse_password_in_argv,
        server_command,
        server_env,
        writable_folder_problem,
    )

    layout = ProjectLayout(main_worktree_root(Path.cwd()))
    try:
        if backend_store_uri is not None:
            refuse_password_in_argv(backend_store_uri)
        uri = backend_store_uri or os.environ.get(BACKEND_URI_ENV) or default_tracking_uri(layout.root)
        if port_in_use(host, port):
            raise ServerError(f"port {port} on {host} is already in use: pick another with --port")
        check_backend(uri)
    except ServerError as err:
        raise fail(str(err), EXIT_FAILED) from err
    destination = artifacts_destination or str(layout.artifact_root)
    if "://" not in destination:  # a folder here: absolute, so the banner names where it really is
        try:
            destination = str(Path(destination).expanduser().absolute())
        except RuntimeError as err:  # ~name of a user this machine does not have
            home = destination.split("/")[0]
            raise fail(
                f"--artifacts-destination {destination}: no home folder is known for {home}:"
                " give the full path"
            ) from err
        if problem := writable_folder_problem(Path(destination)):
            raise fail(f"--artifacts-destination: {problem}", EXIT_FAILED)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"  # IPv6 in brackets
    authenticate = auth if auth is not None else not is_loopback(host)
    auth_config, secret_key = prepare_authentication(layout.auth_dir) if authenticate else (None, None)
    if not authenticate and not is_loopback(host):
        typer.echo(exposure_warning(f"http://{host}:{port}"), err=True)
    config = ServerConfig(uri, destination, host, port, workers, allowed_hosts, auth_config)
    clients = f"export MLFLOW_TRACKING_URI=http://<this host>:{port}"
    if authenticate:
        clients += " MLFLOW_TRACKING_USERNAME=<user> MLFLOW_TRACKING_PASSWORD=<password>"
    typer.echo(
        f"MLflow tracking server on {url} (store {masked(uri)}, artifacts {destination}, "
        f"{'users and passwords required' if authenticate else 'no authentication'}); "
        f"clients: {clients}; Ctrl-C stops it",
        err=True,
    )
    raise typer.Exit(serve_until_stopped(server_command(config), server_env(config, secret_key)))


@user_app.command(
    "add",
    epilog="Examples:\n\n  gat user add alice\n\n"
    "  printf '%s\\n' \"$PW\" | gat user add bob --read-only --password-stdin",
)
def user_add(
    name: Annotated[str, typer.Argument(help="The new user's name.")],
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Read everything, change nothing others created.")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the new password from stdin instead of a prompt.")
    ] = False,
) -> None:
    """Add a user to the team server at MLFLOW_TRACKING_URI: a writer (logs runs, registers models) or
    a reader."""
    from gatcluster.tracking.server_auth import AuthSetupError
    from gatcluster.tracking.store_uri import masked
    from gatcluster.tracking.users import UserError, add_user

    if not name.strip() or ":" in name or not name.isprintable():
        raise fail(
            f"user name {name!r}: give a printable name without ':' (HTTP basic authentication splits at it)"
        )
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")):
        raise fail("set MLFLOW_TRACKING_URI to the team server's http(s)://host:port")
    from gatcluster.tracking.credentials import (
        SET_CREDENTIALS,
        CredentialsUnreadable,
        check_credentials_file,
        sent_credentials,
    )

    try:  # a damaged file is named as such, not taken for missing credentials
        check_credentials_file(uri)
    except CredentialsUnreadable as err:
        raise fail(str(err), EXIT_FAILED) from err
    if not all(sent_credentials()):
        raise fail(f"{SET_CREDENTIALS} to an admin's")
    try:
        check_server_answers(uri)  # before asking for a password, and in seconds, not minutes
    except ServerUnreachable as err:
        raise fail(str(err), EXIT_FAILED) from err
    password = read_new_password(f"password for {name}", password_stdin)
    retry_briefly(os.environ)
    try:
        add_user(uri, name, password, read_only)
    except (UserError, AuthSetupError) as err:
        raise fail(str(err), EXIT_FAILED) from err
    kind = "reader" if read_only else "writer"
    typer.echo(f"added {kind} {name} to {masked(uri)}", err=True)

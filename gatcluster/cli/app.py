"""The `gat` command line: cluster image folders, inspect models, presets, the MLflow UI.

gat predict photos/ --model models/gatcluster.onnx --out clusters.csv
gat info models/gatcluster.onnx
gat preset stl10                write the STL-10 preset into ./params.yaml (comments kept)
gat check                       validate ./params.yaml against the data (the pipeline's first stage)
gat promote 3                   point the registry alias @champion at version 3 of the exported model
gat ui                          MLflow UI on http://127.0.0.1:5000 against the project's mlflow.db
gat server --backend-store-uri postgresql://...   the team's tracking server (registry, artifacts, users)
gat user add alice              add a writer to the team server (as its admin)
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from gatcluster import __version__
from gatcluster.cli.completion import PREDICT_DEVICES, complete_device, complete_format, complete_preset_name
from gatcluster.cli.given import given_path, given_text
from gatcluster.cli.http_retries import retry_briefly
from gatcluster.cli.messages import fail, store_error
from gatcluster.cli.servers import port_in_use, serve_until_stopped, server, user_app
from gatcluster.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED
from gatcluster.library_logs import quiet_library_logs
from gatcluster.telemetry import telemetry_off

telemetry_off()  # before MLflow or ONNX Runtime are imported by a command
# `mlflow ui` starts 4 workers by default: four processes of ~250 MB each, and 15 s of CPU instead of
# 6 s before the UI answers on 2 cores (measured on an AMD EPYC); one serves one user's browser.
UI_WORKERS = 1
PROJECT_PARAMS = Path("params.yaml")  # --params when not given: the project's, in this folder

app = typer.Typer(
    help="GATCluster: cluster unlabelled images with one network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def show_version(value: bool) -> None:
    """--version: print the version and stop."""
    if value:
        typer.echo(f"gatcluster {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=show_version, is_eager=True, help="Show the version and exit."),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show library warnings and INFO lines (quiet by default).")
    ] = False,
) -> None:
    """GATCluster: cluster unlabelled images with one network."""
    ctx.obj = {"verbose": verbose}
    if verbose:
        os.environ["GAT_VERBOSE"] = "1"  # what the pipeline's stages read
        logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(name)s: %(message)s")
    else:
        warnings.filterwarnings("ignore")  # library warnings; our own messages are printed, not warned


@app.command(epilog="Example: gat preset stl10 && dvc exp run -n stl10")
def preset(
    name: Annotated[
        str | None,
        typer.Argument(help="Preset to apply; omit to list them.", autocompletion=complete_preset_name),
    ] = None,
    params: Annotated[
        Path, typer.Option(parser=given_path, help="The params file to rewrite.")
    ] = PROJECT_PARAMS,
) -> None:
    """List the presets, or write one into params.yaml (the keys presets decide; comments kept)."""
    from gatcluster.atomic import WriteError, file_target, write_text_atomic
    from gatcluster.config.loading import params_from_text, read_params_text
    from gatcluster.config.params import DATA_ROOT_KINDS, ParamsError
    from gatcluster.config.params_edit import (
        apply_overrides,
        preset_description,
        preset_names,
        preset_values,
        root_reset,
    )
    from gatcluster.path_text import shown_path

    if name is None:
        for known in preset_names():
            typer.echo(f"{known:<16} {preset_description(known)}")
        return
    try:
        overrides = preset_values(name)  # a mistyped name first: it needs no params.yaml
    except ParamsError as err:
        raise fail(str(err)) from err
    refuse_unreadable_params(params)
    try:
        old_text = read_params_text(params)
        old_data = params_from_text(old_text, shown_path(params)).data
        reset = root_reset(old_data, overrides["data.source"])
        text, _ = apply_overrides(old_text, overrides | reset, shown_path(params))
    except ParamsError as err:
        raise fail(str(err)) from err
    try:
        # Through a symbolic link (params.yaml kept elsewhere): the file the user edits changes.
        # Line endings as the file had most of them: a params.yaml saved on Windows stays CRLF.
        raw = params.read_bytes()
        crlf = 2 * raw.count(b"\r\n") > raw.count(b"\n")
        write_text_atomic(file_target(params), text, newline="\r\n" if crlf else "\n", keep_mode=True)
    except WriteError as err:  # it names the file and what was kept
        raise fail(str(err), EXIT_FAILED) from err
    except OSError as err:
        raise fail(f"cannot write {shown_path(params)}: {err.strerror or err}", EXIT_FAILED) from err
    shown = shown_path(params)
    typer.echo(f"{shown}: preset {name} set {len(overrides)} values; run `dvc repro` or `dvc exp run`")
    if reset:
        new_source, old_kind = overrides["data.source"], DATA_ROOT_KINDS[old_data.source]
        held = f"was set for data.source {old_data.source}" if old_kind else "is read by no source here"
        typer.echo(
            f"data.root reset to null: {shown_path(old_data.root)} {held}, and {new_source} reads an"
            f" {DATA_ROOT_KINDS[new_source]} there; set it again if it holds one"
        )


@app.command(epilog="Example: gat check && dvc repro")
def check(
    params: Annotated[
        Path, typer.Option(parser=given_path, help="The params file to check.")
    ] = PROJECT_PARAMS,
) -> None:
    """Check params.yaml against the data, as the pipeline's first stage does (nothing is written)."""
    # DVC's YAML parser, which reads params.yaml here too (loading.parse_yaml imports it late): from
    # the base install this says what to install, whether or not a params.yaml is there.
    import ruamel.yaml  # noqa: F401

    from gatcluster.config.loading import load_params
    from gatcluster.config.params import ParamsError
    from gatcluster.path_text import shown_path
    from gatcluster.pipeline.check_stage import check_against_data
    from gatcluster.pipeline.environment import check_environment
    from gatcluster.pipeline.layout import ProjectLayout
    from gatcluster.tracking.store_uri import file_store_allowed

    refuse_unreadable_params(params)
    env = os.environ
    try:
        checked = check_against_data(load_params(params), ProjectLayout(params.resolve().parent))
        allowed = file_store_allowed(env.get("MLFLOW_ALLOW_FILE_STORE"))
        check_environment(env.get("GAT_THREADS"), env.get("MLFLOW_TRACKING_URI"), allowed)
    except ParamsError as err:
        raise fail(str(err)) from err
    typer.echo(f"{shown_path(params)} is {checked}")


@app.command(epilog="Example: gat info models/gatcluster.onnx")
def info(
    model: Annotated[
        str,
        typer.Argument(
            parser=given_text,
            help="A gatcluster .onnx file, or a registry model: models:/NAME@ALIAS, models:/NAME/VERSION.",
        ),
    ],
) -> None:
    """Print the preprocessing contract and provenance stored in a model."""
    from gatcluster.path_text import one_line
    from gatcluster.serving.contract import ModelFileError, read_contract

    try:
        contract = read_contract(local_model_file(model))
    except ModelFileError as err:
        raise fail(str(err), EXIT_FAILED) from err
    for key, value in sorted(contract.to_metadata().items()):
        typer.echo(f"{key.removeprefix('gatcluster.')}: {one_line(value)}")


@app.command(
    epilog="Examples:\n\n  gat predict photos/ --model models/gatcluster.onnx --out clusters.csv\n\n"
    "  gat predict a.png b.jpg --model m.onnx --format jsonl --attention-dir att/\n\n"
    "  gat predict photos/ --sort-into sorted/ --gallery gallery/"
)
def predict(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(parser=given_path, help="Image files or folders (scanned recursively).")
    ],
    model: Annotated[
        str,
        typer.Option(
            parser=given_text,
            help="The exported .onnx file, or a registry model: models:/NAME@ALIAS, models:/NAME/VERSION.",
        ),
    ] = "models/gatcluster.onnx",
    out: Annotated[
        Path | None, typer.Option(parser=given_path, help="Write the table here (default: stdout).")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="csv | jsonl | parquet (default: from --out)", autocompletion=complete_format
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per ONNX Runtime call.")] = 64,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when usable) | cpu | cuda", autocompletion=complete_device)
    ] = "auto",
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads for ONNX Runtime and for decoding (at most 4).")
    ] = None,
    attention_dir: Annotated[
        Path | None, typer.Option(parser=given_path, help="Write attention-map overlays here.")
    ] = None,
    gallery: Annotated[
        Path | None,
        typer.Option(
            parser=given_path, help="Write a cluster gallery here: gallery.html and one PNG per cluster."
        ),
    ] = None,
    gallery_members: Annotated[
        int,
        typer.Option(
            min=1, max=256, help="Per cluster: most confident members shown, and as many at random."
        ),
    ] = 16,
    sort_into: Annotated[
        Path | None,
        typer.Option(
            parser=given_path, help="Link each input into DIR/<cluster name>/ (nothing there is overwritten)."
        ),
    ] = None,
    copy: Annotated[
        bool, typer.Option("--copy", help="With --sort-into: copy the files instead of linking.")
    ] = False,
) -> None:
    """Cluster image files through the ONNX model; a table of clusters and probabilities."""
    from gatcluster.cli.predict_command import PredictOptions, holds_an_input, run_predict
    from gatcluster.serving.outputs import OutputFormatError, format_for

    if device not in PREDICT_DEVICES:
        raise fail(f"--device must be auto, cpu or cuda; got {device!r}")
    if problem := output_paths_problem(out, attention_dir, gallery, sort_into):
        raise fail(problem)
    try:
        fmt = format_for(out, fmt)
    except OutputFormatError as err:
        raise fail(str(err)) from err
    if fmt == "parquet" and out is None:
        raise fail("Parquet output needs --out FILE (it is a binary format)")
    if threads is not None and threads > (os.cpu_count() or 1):
        # More threads than CPUs only makes ONNX Runtime's threads wait on each other.
        raise fail(f"--threads {threads} is more than this machine's {os.cpu_count()} CPUs")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise fail("Parquet output needs pyarrow: pip install 'gatcluster[parquet]' (or use csv / jsonl)")
    for flag, folder, example in (
        ("--attention-dir", attention_dir, "attention"),
        ("--gallery", gallery, "gallery"),
    ):
        if folder is not None and holds_an_input(folder, paths):
            # Its pictures would land among the inputs and be clustered by the next run.
            raise fail(
                f"{flag} {folder} is an input folder or holds one: give it a folder of its own,"
                f" e.g. {flag} {folder / example}"
            )
    if copy and sort_into is None:
        raise fail("--copy applies to --sort-into DIR: add --sort-into, or drop --copy")
    verbose = bool(ctx.obj and ctx.obj.get("verbose"))
    model_file = local_model_file(model)
    options = PredictOptions(
        model_file,
        out,
        fmt,
        batch_size,
        device,
        threads,
        attention_dir,
        verbose,
        gallery=gallery,
        gallery_members=gallery_members,
        sort_into=sort_into,
        copy=copy,
        model_label=model,
    )
    raise typer.Exit(run_predict(paths, options))


def refuse_unreadable_params(params: Path) -> None:
    """Exit 2 when `params` is no params file to read (missing, a folder, a broken link, ...)."""
    from gatcluster.config.loading import params_file_problem
    from gatcluster.path_text import shown_path

    if problem := params_file_problem(params):
        if params == PROJECT_PARAMS:  # not given: the command ran outside the project
            raise fail(f"{shown_path(params)} {problem}: run this in the project folder or pass --params")
        raise fail(f"--params {shown_path(params)} {problem}")


def output_paths_problem(
    out: Path | None, attention_dir: Path | None, gallery: Path | None, sort_into: Path | None
) -> str | None:
    """Why `gat predict` cannot write where its output options point, asked before any image is
    read: --out a folder, an output folder that is a file, a broken link or a name too long."""
    from gatcluster.atomic import is_open_descriptor
    from gatcluster.path_kind import Kind, look_at
    from gatcluster.path_text import shown_path

    if out is not None:
        looked, shown = look_at(out), shown_path(out)
        if is_open_descriptor(out):  # a rename onto where `>> all.csv` points would replace all.csv
            return f"--out {shown} is an open descriptor of this command: leave out --out to write to stdout"
        if looked.kind is Kind.FOLDER:
            example = shown_path(out / "clusters.csv")
            return f"--out {shown} is a folder: give a file name, e.g. --out {example}"
        if looked.kind is Kind.UNREADABLE:
            return f"--out {shown} cannot be written ({looked.reason})"
    folders = {"--attention-dir": attention_dir, "--gallery": gallery, "--sort-into": sort_into}
    for flag, folder in folders.items():
        if out is not None and folder is not None and out.absolute() == folder.absolute():
            return f"--out {shown_path(out)} is {flag} too: give the table a file of its own"
    for flag, folder in folders.items():
        looked = look_at(folder) if folder is not None else None
        if looked is None or looked.kind in (Kind.FOLDER, Kind.MISSING):
            continue
        shown = shown_path(folder)
        if looked.kind is Kind.UNREADABLE:
            return f"{flag} {shown} cannot be written ({looked.reason})"
        what = "a broken symlink" if looked.kind is Kind.BROKEN_LINK else "a file"
        return f"{flag} {shown} is {what}: give a folder"
    return None


def cache_root() -> Path:
    """Where downloaded registry models are kept: GAT_CACHE_DIR (`~` expanded, made absolute), else
    the user's cache folder ($XDG_CACHE_HOME, which the XDG specification ignores when relative)."""
    if given := os.environ.get("GAT_CACHE_DIR"):
        try:
            return Path(given).expanduser().absolute()
        except RuntimeError as err:  # ~name of a user this machine does not have
            home = given.split("/")[0]
            said = f"GAT_CACHE_DIR {given}: no home folder is known for {home}: give the full path"
            raise fail(said) from err
    xdg = Path(os.environ.get("XDG_CACHE_HOME", ""))
    return (xdg if xdg.is_absolute() else Path.home() / ".cache") / "gatcluster"


def local_model_file(model: str) -> Path:
    """A model argument as a local file: a path as given, or a registry version fetched into the cache."""
    from gatcluster.tracking.model_uri import RegistryError, is_registry_uri, parse_model_uri

    if not is_registry_uri(model):
        return Path(model)
    try:  # a mistyped URI is a usage error, said before any store is opened or MLflow imported
        ref = parse_model_uri(model)
    except RegistryError as err:
        raise fail(str(err)) from err
    try:
        from gatcluster.tracking.registry import fetch_model, registry_client
    except ImportError as err:
        raise fail(f"{model} needs MLflow: pip install 'gatcluster[train]' (or give a .onnx file)") from err

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line of ours instead
    if os.environ.get("GAT_VERBOSE") != "1":  # MLflow's INFO lines ("No artifacts found ...") too
        quiet_library_logs(os.environ)
    retry_briefly(os.environ)
    cache = cache_root()  # a bad GAT_CACHE_DIR is said before any store is opened
    uri = project_tracking_uri()
    with registry_failures(uri):
        path, version = fetch_model(registry_client(uri), ref, cache)
    typer.echo(f"{model}: version {version} ({path})", err=True)
    return path


def registered_model_name(given: str | None, params: Path | None) -> str:
    """--registered-model, else export.registered_model of --params, else of the project's
    params.yaml (the git project around the current folder, whose store the registry is), else the
    default name. A --params that cannot be read is an error, not a fallback: the alias of another
    model would move."""
    from gatcluster.config.loading import load_params
    from gatcluster.config.params import ExportConfig, ParamsError
    from gatcluster.path_text import shown_path
    from gatcluster.tracking.mlflow_runs import main_worktree_root

    if given is not None:
        if not given.strip() or not given.isprintable():
            raise fail(f"--registered-model {given!r}: give the registered model's name")
        return given
    if params is None:
        params = main_worktree_root(Path.cwd()) / "params.yaml"  # from a subfolder too
        if not params.is_file():
            return ExportConfig().registered_model  # outside a project: the name export gives
    try:
        name = load_params(params).export.registered_model
    except ParamsError as err:
        raise fail(str(err)) from err
    if name is None:
        raise fail(f"{shown_path(params)} sets export.registered_model: null: pass --registered-model NAME")
    return name


@app.command(epilog="Examples:\n\n  gat promote 3\n\n  gat promote 4 --alias challenger")
def promote(
    version: Annotated[str, typer.Argument(help="The version to promote (a number, or 'latest').")],
    alias: Annotated[str, typer.Option(help="The alias to point at it.")] = "champion",
    registered_model: Annotated[
        str | None, typer.Option(help="Registered model; default: export.registered_model of params.yaml.")
    ] = None,
    params: Annotated[
        Path | None,
        typer.Option(parser=given_path, help="The params file naming the model (default: the project's)."),
    ] = None,
) -> None:
    """Point a registry alias (default @champion) at a version of the exported model."""
    from gatcluster.config.validation import cut
    from gatcluster.tracking.model_uri import alias_problem
    from gatcluster.tracking.registry import latest_version, move_alias, registry_client
    from gatcluster.tracking.store_uri import masked

    name = registered_model_name(registered_model, params)
    if problem := alias_problem(alias):
        raise fail(f"--alias {cut(alias)!r}: {problem}")
    if version != "latest" and not re.fullmatch(r"[0-9]{1,18}", version):
        raise fail(f"VERSION must be a number or 'latest', got {version!r}")
    uri = project_tracking_uri()
    if os.environ.get("GAT_VERBOSE") != "1":
        quiet_library_logs(os.environ)
    retry_briefly(os.environ)
    with registry_failures(uri):
        client = registry_client(uri)
        number = latest_version(client, name) if version == "latest" else int(version)
        before = move_alias(client, name, number, alias)
    was = "" if before is None else f" (was version {before})"
    typer.echo(f"models:/{name}@{alias} -> version {number}{was}; registry {masked(uri)}")


@contextmanager
def registry_failures(uri: str) -> Iterator[None]:
    """One `error:` line and exit 1 for what the registry at `uri` refused (RegistryError, its
    first line: MLflow's text may span a failed SQL statement) or its SQL store raised."""
    from gatcluster.tracking.registry import RegistryError
    from gatcluster.tracking.store_uri import is_server_uri, masked

    try:
        yield
    except RegistryError as err:
        raise fail(str(err).strip().splitlines()[0], EXIT_FAILED) from err
    except (ValueError, KeyError, TypeError) as err:
        if not is_server_uri(uri):
            raise
        # MLflow's client reads the server's JSON: a server of another kind answers 200 with `{}`.
        said = (str(err).strip().splitlines() or [""])[0][:200]
        raise fail(
            f"the tracking server at {masked(uri)} gave an answer MLflow cannot read"
            f" ({type(err).__name__}: {said}): is it an MLflow server?",
            EXIT_FAILED,
        ) from err
    except Exception as err:
        if (said := store_error(err)) is None:
            raise
        raise fail(f"the MLflow store at {masked(uri)} failed: {said}", EXIT_FAILED) from err


def store_uri_problem(uri: str) -> str | None:
    """Why MLflow could not use the store `uri` (tracking_uri_problem, MLFLOW_ALLOW_FILE_STORE read
    here), or None."""
    from gatcluster.tracking.store_uri import file_store_allowed, tracking_uri_problem

    return tracking_uri_problem(uri, file_store_allowed(os.environ.get("MLFLOW_ALLOW_FILE_STORE")))


def project_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else the SQLite store of the git project around the current folder. A
    value MLflow cannot use is a usage error here, in `gat check`'s words (MLflow's own answer is
    several sentences about its file store)."""
    from gatcluster.tracking.mlflow_runs import resolve_tracking_uri
    from gatcluster.tracking.store_uri import masked

    given = (os.environ.get("MLFLOW_TRACKING_URI") or "").strip()
    if given and (problem := store_uri_problem(given)):
        raise fail(f"MLFLOW_TRACKING_URI {masked(given)} {problem}")
    return resolve_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI"), Path.cwd())


@app.command(epilog="Example: gat ui --port 5001")
def ui(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 5000,
    host: Annotated[
        str, typer.Option(parser=given_text, help="Interface; keep 127.0.0.1 unless you mean to share it.")
    ] = "127.0.0.1",
    backend_store_uri: Annotated[
        str | None,
        typer.Option(
            parser=given_text, help="MLflow store; default: MLFLOW_TRACKING_URI, else the project's mlflow.db"
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Server worker processes (one serves one user).")
    ] = UI_WORKERS,
) -> None:
    """Open the MLflow UI on the project's store (Ctrl-C or SIGTERM stops it and its server)."""
    if port_in_use(host, port):
        raise fail(f"port {port} on {host} is already in use: pick another with --port", EXIT_FAILED)
    uri = backend_store_uri or project_tracking_uri()
    from gatcluster.tracking.server import sqlite_store_problem
    from gatcluster.tracking.store_uri import is_server_uri, masked

    # Said before the banner: MLflow's own errors about such a store came after it.
    if backend_store_uri and (problem := store_uri_problem(backend_store_uri)):
        raise fail(f"--backend-store-uri {masked(backend_store_uri)} {problem}")

    if is_server_uri(uri):  # `mlflow ui` cannot serve from a server: it failed after the banner
        named = "--backend-store-uri" if backend_store_uri else "MLFLOW_TRACKING_URI"
        raise fail(f"{named} {masked(uri)} is a tracking server, which serves its own UI: open that URL")

    if problem := sqlite_store_problem(uri):
        raise fail(f"the MLflow store at {masked(uri)} cannot be opened: {problem}", EXIT_FAILED)
    typer.echo(f"MLflow UI on http://{host}:{port} (store {masked(uri)}); Ctrl-C stops it", err=True)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    raise typer.Exit(serve_until_stopped(cmd))


app.command(
    epilog="Examples:\n\n  gat server\n\n"
    "  gat server --backend-store-uri postgresql://mlflow@db:5432/mlflow --host 0.0.0.0 "
    "--allowed-hosts mlflow.example.org --artifacts-destination /srv/mlflow/artifacts\n\n"
    "Clients: export MLFLOW_TRACKING_URI=http://HOST:PORT (and MLFLOW_TRACKING_USERNAME/PASSWORD "
    "where it authenticates), then dvc repro, gat promote, gat predict."
)(server)
app.add_typer(user_app, name="user")


TERMINATED = threading.Event()  # set by SIGTERM: typer reports the interrupt it raises as 130


def stop_like_ctrl_c(signum: int, frame: object) -> None:
    """SIGTERM handler (`kill PID`, schedulers): stop as Ctrl-C does, so a table or output being
    written is removed and the previous one kept; `run` then exits EXIT_TERMINATED."""
    TERMINATED.set()
    raise KeyboardInterrupt


def run() -> None:
    """The `gat` entry point: the app, with a missing optional dependency said in one line.

    The base install serves (`gat predict`, `gat info`: NumPy, Pillow, ONNX Runtime); the other
    commands need the `train` extra, and without it they say so instead of printing a traceback.
    """
    signal.signal(signal.SIGTERM, stop_like_ctrl_c)
    try:
        app()
    except SystemExit as done:
        if TERMINATED.is_set() and done.code == EXIT_INTERRUPTED:
            sys.exit(EXIT_TERMINATED)
        raise
    except ModuleNotFoundError as err:
        typer.echo(f"error: {missing_module_advice(err.name)}", err=True)
        sys.exit(EXIT_FAILED)


def missing_module_advice(name: str | None) -> str:
    """What to install for a module a command could not import: the `train` extra where it is
    not installed, else the module's own package (a driver MLflow loads for a mysql:// store)."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("mlflow") is None:
        return (
            f"this command needs {name}, which the base install leaves out: pip install 'gatcluster[train]'"
        )
    return (
        f"this command needs the module {name}, which no gatcluster extra installs: install the"
        " package that provides it into this environment"
    )


if __name__ == "__main__":
    run()

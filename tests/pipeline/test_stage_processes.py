"""Stage processes on their own (no `dvc repro`): bad params, missing or too few images, and a
training interrupted by SIGINT / SIGTERM / SIGKILL, resumed or closed by the next run.

Kept apart from test_pipeline.py (which builds one project per module) so that pytest-xdist runs
these beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from stage_project import (  # noqa: E402
    REPO,
    TINY,
    copy_project,
    default_sigint,
    fetch_in_process,
    mlflow_runs,
    run,
    stage_env,
    train_until_first_checkpoint,
    write_params,
)

pytestmark = pytest.mark.e2e


# The failure paths of stages/_common.run_stage, through real stage processes: a usage error here
# (exit 2), a data error in test_train_without_fetched_data_says_to_fetch (exit 1). The checks
# themselves are tested in-process (tests/config/test_preflight.py, test_params.py).
def test_bad_params_exit_with_a_message_not_a_traceback(tmp_path):
    shutil.copytree(REPO / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    write_params(tmp_path, {"train": {"lr": -1}})
    done = run(tmp_path, sys.executable, "stages/train.py")
    assert done.returncode == 2
    assert "train.lr" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_check_stage_refuses_an_environment_train_would_stop_on(tmp_path):
    shutil.copytree(REPO / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    write_params(tmp_path, {})
    env = {**stage_env(tmp_path), "MLFLOW_TRACKING_URI": "foo://bar"}
    done = run(tmp_path, sys.executable, "stages/check.py", env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "error: MLFLOW_TRACKING_URI foo://bar names no store MLflow tracks in (foo://)" in done.stderr


def test_fetch_of_too_few_images_stops_before_writing(tmp_path):
    from PIL import Image

    shutil.copytree(REPO / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.new("L", (20, 20), 40 * i).save(tmp_path / "imgs" / f"{i}.png")
    write_params(tmp_path, {"data": {"source": "folder", "root": "imgs"}, "train": {"sub_batch": 2}})
    done = run(tmp_path, sys.executable, "stages/fetch.py")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "data.source folder has 3 images, not more than model.num_clusters (10)" in done.stderr
    assert not (tmp_path / "data" / "dataset").exists()


def test_train_without_fetched_data_says_to_fetch(tmp_path):
    shutil.copytree(REPO / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    write_params(tmp_path, {})
    done = run(tmp_path, sys.executable, "stages/train.py")
    assert done.returncode == 1
    assert "run the fetch stage first" in done.stderr and "Traceback" not in done.stderr


def test_a_tracking_server_that_is_down_or_unusable_credentials_stop_the_stage_in_one_line(tmp_path):
    root = copy_project(tmp_path)
    write_params(root, TINY)
    fetch_in_process(root)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
    done = run(root, sys.executable, "stages/train.py", env={**stage_env(root), "MLFLOW_TRACKING_URI": uri})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"error: the tracking server at {uri} does not answer" in done.stderr
    assert not (root / "checkpoints").exists()  # stopped before training, not after MLflow's retries

    home = tmp_path / "home"  # a credentials file MLflow's configparser cannot read
    (home / ".mlflow").mkdir(parents=True)
    (home / ".mlflow" / "credentials").write_text("[mlflow]\nmlflow_tracking_password = 100%\n")
    with socket.socket() as server:  # a server that takes connections
        server.bind(("127.0.0.1", 0))
        server.listen()
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        env = {**stage_env(root), "MLFLOW_TRACKING_URI": uri, "HOME": str(home)}
        done = run(root, sys.executable, "stages/train.py", env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "error: ~/.mlflow/credentials cannot be read" in done.stderr
    assert not (root / "checkpoints").exists()


def test_a_damaged_mlflow_store_or_data_set_stops_the_stage_in_one_line(tmp_path):
    root = copy_project(tmp_path)
    write_params(root, TINY)
    fetch_in_process(root)
    (root / "mlflow.db").write_bytes(b"not a database" * 100)
    done = run(root, sys.executable, "stages/train.py")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"error: MLflow tracking failed at sqlite:///{root / 'mlflow.db'}: " in done.stderr
    assert "file is not a database" in done.stderr and not (root / "checkpoints").exists()
    (root / "mlflow.db").unlink()
    images = root / "data" / "dataset" / "images.npy"
    images.write_bytes(images.read_bytes()[:1000])  # cut short
    done = run(root, sys.executable, "stages/train.py")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"error: cannot read {images} (" in done.stderr and "dvc checkout data/dataset" in done.stderr


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_training_is_killed_in_mlflow_and_resumes_in_the_same_run(tmp_path, sig, code):
    root = copy_project(tmp_path)
    quick = {"iterations": 8, "large_batch": 100, "eval_every": 0}  # ~0.5 s per iteration
    write_params(root, {**TINY, "train": {**TINY["train"], **quick}})
    fetch_in_process(root)
    train = train_until_first_checkpoint(root, stage_env(root), preexec_fn=default_sigint)
    train.send_signal(sig)
    _, err = train.communicate(timeout=120)
    assert train.returncode == code and b"resume" in err and b"Traceback" not in err
    client, runs = mlflow_runs(root)
    assert [r.info.status for r in runs] == ["KILLED"]
    if sig != signal.SIGINT:
        return  # both signals take the same path from here: resuming is checked once
    # Resumed as another DVC experiment (`dvc exp run` after an interrupted one): the run's tags
    # name the invocation that finished the model.
    done = run(
        root, sys.executable, "stages/train.py", env={**stage_env(root), "DVC_EXP_NAME": "resumed-exp"}
    )
    assert done.returncode == 0, done.stderr
    client, runs = mlflow_runs(root)
    assert [r.info.status for r in runs] == ["FINISHED"]  # the same run, continued
    assert runs[0].data.tags["dvc.exp_name"] == "resumed-exp"
    assert json.loads((root / "reports" / "train" / "summary.json").read_text())["resumed_from"] >= 1
    steps = [
        m.step for m in client.get_metric_history(runs[0].info.run_id, "system/cpu_utilization_percentage")
    ]
    assert steps and len(set(steps)) == len(steps)  # the resumed run's samples continue, none overwritten


def test_a_run_killed_with_sigkill_is_closed_by_the_next_run(tmp_path):
    root = copy_project(tmp_path)
    quick = {"iterations": 8, "large_batch": 100, "eval_every": 0}
    write_params(root, {**TINY, "train": {**TINY["train"], **quick}})
    fetch_in_process(root)
    train = subprocess.Popen([sys.executable, "stages/train.py"], cwd=root, env=stage_env(root))
    checkpoint = root / "checkpoints" / "train" / "last.pt"
    while not checkpoint.exists() and train.poll() is None:
        time.sleep(0.2)
    train.kill()  # SIGKILL: no handler runs, the run stays RUNNING
    train.wait(timeout=60)
    _, runs = mlflow_runs(root)
    assert [r.info.status for r in runs] == ["RUNNING"]
    write_params(root, {**TINY, "train": {**TINY["train"], **quick, "iterations": 2, "lr": 0.003}})
    done = run(root, sys.executable, "stages/train.py")  # other params: a new run, not a resume
    assert done.returncode == 0, done.stderr
    assert "closed MLflow run" in done.stderr
    _, runs = mlflow_runs(root)
    assert [r.info.status for r in runs] == ["KILLED", "FINISHED"]


# DVC's `dvc exp exec-run`, which `dvc queue stop --kill` and `dvc queue kill --force` SIGKILL: it
# starts the stage, says the stage's pid, and waits for it.
DVC_LIKE_PARENT = """
import subprocess, sys
stage = subprocess.Popen([sys.executable, "stages/train.py"])
print(stage.pid, flush=True)
stage.wait()
"""


@pytest.mark.parametrize("processes", [1, 2])
def test_training_in_a_dvc_experiment_copy_stops_when_dvc_is_killed(tmp_path, processes):
    # Left alone, the stage read on from the copy DVC deletes half a second after killing its own
    # process, and failed there: run FAILED, a traceback per process.
    root = copy_project(tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12cd")
    quick = {"iterations": 40, "large_batch": 100, "eval_every": 0, "processes": processes}
    write_params(root, {**TINY, "train": {**TINY["train"], **quick}})
    fetch_in_process(root)
    env = {**stage_env(root), "GAT_THREADS": "1"}  # one thread per process
    parent = subprocess.Popen(
        [sys.executable, "-c", DVC_LIKE_PARENT], cwd=root, env=env, stdout=subprocess.PIPE
    )
    stage = int(parent.stdout.readline())
    try:
        while not (root / "checkpoints" / "train" / "last.pt").exists():
            time.sleep(0.1)
        parent.kill()
        parent.wait(timeout=30)
        shutil.rmtree(root)  # as DVC cleans up after the killed task
        deadline = time.monotonic() + 60
        while (statuses := [r.info.status for r in mlflow_runs(tmp_path)[1]]) == ["RUNNING"]:
            assert time.monotonic() < deadline, "the stage trained on after DVC was killed"
            time.sleep(0.2)
        # KILLED, as on Ctrl-C, in the project's store beside the deleted copy; with two processes
        # torchrun passed the stop on (a SIGTERM from it would have meant a failed process).
        assert statuses == ["KILLED"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stage, signal.SIGKILL)


@pytest.fixture
def train_script(monkeypatch) -> dict:
    """stages/train.py's functions, loaded in this process (its `_common` found beside it)."""
    import runpy

    monkeypatch.syspath_prepend(str(REPO / "stages"))
    return runpy.run_path(str(REPO / "stages" / "train.py"))


def test_a_rank_stopped_by_torchrun_inside_a_collective_is_not_taken_for_a_lost_peer(train_script):
    from gatcluster.training.distributed import Ranks
    from gatcluster.training.fit import among_ranks

    stopped = train_script["StoppedByTorchrun"]

    def stopped_in_a_collective() -> None:
        raise stopped("stopped by torchrun")

    # SIGTERM's handler raises it wherever the rank is waiting: it must reach the stage as itself
    # (quiet under the stage's launcher), not as "rank 0 lost contact with the other processes".
    with pytest.raises(stopped):
        among_ranks(Ranks(0, 2, 0), "in iteration 1", stopped_in_a_collective)


@pytest.mark.parametrize(
    ("world_size", "launched", "stop", "code", "says"),
    [
        (2, True, "ctrl-c", 130, False),  # a rank the stage launched: its launcher says it
        (2, True, "torchrun", 143, False),  # 143: the launcher reads it as a stop, not a failure
        (1, True, "ctrl-c", 130, True),  # the launcher itself (the mark is in its environment too)
        (2, False, "ctrl-c", 130, True),  # a rank under a torchrun of the user's
    ],
)
def test_only_ranks_the_stage_launched_leave_reporting_a_stop_to_it(
    train_script, monkeypatch, capsys, world_size, launched, stop, code, says
):
    from gatcluster.pipeline.launch import LAUNCHED_BY_THE_STAGE

    stopped = KeyboardInterrupt() if stop == "ctrl-c" else train_script["StoppedByTorchrun"]("stopped")

    def train_as_rank(ranks):
        raise stopped

    stage = train_script["main"].__globals__
    monkeypatch.setitem(stage, "train_as_rank", train_as_rank)
    monkeypatch.setitem(stage, "set_threads", lambda: None)  # this test process keeps its thread count
    if world_size > 1:
        monkeypatch.setenv("WORLD_SIZE", str(world_size))
        monkeypatch.setenv("RANK", "1")
    if launched:
        monkeypatch.setenv(LAUNCHED_BY_THE_STAGE, "1")
    with pytest.raises(SystemExit) as exited:
        train_script["main"]()
    assert exited.value.code == code
    assert ("interrupted: " in capsys.readouterr().err) == says

"""MLflow tracking against a real SQLite store in a temp folder: runs, statuses, hand-off."""

from __future__ import annotations

import subprocess

import pytest
from mlflow.tracking import MlflowClient

from gatcluster.tracking.mlflow_runs import (
    ORIGINAL_RUN_TAG,
    active_run,
    default_tracking_uri,
    experiment_id,
    git_state,
    log_metrics,
    log_params,
    log_stage_params,
    main_worktree_root,
    metric_logger,
    read_run_file,
    reopen_run,
    resolve_tracking_uri,
    set_tags,
    start_run,
    write_run_file,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    client = MlflowClient(tracking_uri=default_tracking_uri(root))
    return client, experiment_id(client, "gatcluster-digits", root / "mlartifacts"), root


def test_default_uri_is_an_absolute_sqlite_path(tmp_path):
    uri = default_tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve().as_posix()}/mlflow.db"


def test_experiment_is_reused_and_keeps_artifacts_in_the_project(store):
    client, exp_id, root = store
    assert experiment_id(client, "gatcluster-digits", root / "elsewhere") == exp_id
    location = client.get_experiment(exp_id).artifact_location
    assert location == (root / "mlartifacts" / "gatcluster-digits").resolve().as_uri()
    assert client.get_experiment(exp_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_finished_run_holds_params_metrics_tags_and_artifacts(store, tmp_path):
    client, exp_id, _ = store
    run_id = start_run(client, exp_id, "train", {"git.commit": "abc"})
    with active_run(client, run_id):
        log_params(client, run_id, {"train.lr": 0.002, "augment.scale": [0.7, 1.3], "data.root": None})
        log = metric_logger(client, run_id)
        log(1, {"loss/total": 3.0})
        log(2, {"loss/total": 2.5, "acc": 0.4})
        set_tags(client, run_id, {"device": "cpu"})
        (tmp_path / "params.yaml").write_text("seed: 0\n")
        client.log_artifact(run_id, str(tmp_path / "params.yaml"))
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"train.lr": "0.002", "augment.scale": "[0.7, 1.3]", "data.root": "None"}
    history = client.get_metric_history(run_id, "loss/total")
    assert [(m.step, m.value) for m in history] == [(1, 3.0), (2, 2.5)]
    assert run.data.tags["git.commit"] == "abc" and run.data.tags["device"] == "cpu"
    assert [a.path for a in client.list_artifacts(run_id)] == ["params.yaml"]


@pytest.mark.parametrize(("error", "status"), [(RuntimeError, "FAILED"), (KeyboardInterrupt, "KILLED")])
def test_failed_or_interrupted_runs_are_never_left_running(store, error, status):
    client, exp_id, _ = store
    run_id = start_run(client, exp_id, "train", {})
    with pytest.raises(error), active_run(client, run_id):
        log_metrics(client, run_id, {"loss/total": 1.0}, 1)
        raise error
    assert client.get_run(run_id).info.status == status


def test_run_file_hands_the_run_to_later_stages(store, tmp_path):
    client, exp_id, _ = store
    run_id = start_run(client, exp_id, "train", {})
    write_run_file(tmp_path / "run.json", run_id, exp_id, {"params_digest": "x"})
    assert read_run_file(tmp_path / "run.json") == {
        "run_id": run_id,
        "experiment_id": exp_id,
        "params_digest": "x",
    }
    assert reopen_run(client, tmp_path / "run.json", exp_id, "evaluate", {}) == run_id


def test_a_run_missing_from_this_store_is_replaced_and_tagged(store, tmp_path):
    client, exp_id, _ = store
    write_run_file(tmp_path / "run.json", "0123456789abcdef0123456789abcdef", exp_id)
    new_id = reopen_run(client, tmp_path / "run.json", exp_id, "evaluate", {"device": "cpu"})
    assert new_id != "0123456789abcdef0123456789abcdef"
    assert client.get_run(new_id).data.tags[ORIGINAL_RUN_TAG] == "0123456789abcdef0123456789abcdef"
    assert read_run_file(tmp_path / "missing.json") is None


def test_git_state_and_main_worktree(tmp_path):
    assert git_state(tmp_path) == ("unknown", False)
    assert main_worktree_root(tmp_path) == tmp_path.resolve()
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "a.txt").write_text("1")
    subprocess.run(["git", "add", "a.txt"], cwd=tmp_path, check=True)
    subprocess.run(
        ["git", "commit", "-qm", "a"], cwd=tmp_path, check=True, env={**env, "PATH": "/usr/bin:/bin"}
    )
    sha, dirty = git_state(tmp_path)
    assert len(sha) == 40 and not dirty
    (tmp_path / "a.txt").write_text("2")
    assert git_state(tmp_path)[1] is True
    # What a run rewrites itself (dvc.lock, the reports) is left out when asked, files or folders.
    assert git_state(tmp_path, [tmp_path / "a.txt"]) == (sha, False)
    assert git_state(tmp_path, [tmp_path / "b.txt"])[1] is True
    sub = tmp_path / "sub"
    sub.mkdir()
    assert main_worktree_root(sub) == tmp_path.resolve()


def test_dvc_experiment_copies_resolve_to_the_project(tmp_path):
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    copy.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)  # DVC's executor: a separate repo
    assert main_worktree_root(copy) == tmp_path


def test_one_place_resolves_the_store_an_override_wins(tmp_path):
    assert resolve_tracking_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"
    assert resolve_tracking_uri(None, tmp_path) == default_tracking_uri(main_worktree_root(tmp_path))
    assert resolve_tracking_uri("  ", tmp_path) == default_tracking_uri(main_worktree_root(tmp_path))


def test_a_relative_sqlite_store_is_the_projects_also_from_a_dvc_experiment_copy(tmp_path):
    # dvc exp run --temp/--queue run in a copy that DVC deletes: a store made there went with it
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    copy.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    assert (
        resolve_tracking_uri("sqlite:///runs/m.db?timeout=30", copy)
        == f"sqlite:///{tmp_path}/runs/m.db?timeout=30"
    )
    assert resolve_tracking_uri("sqlite:////abs/m.db", copy) == "sqlite:////abs/m.db"
    assert resolve_tracking_uri("sqlite:///:memory:", copy) == "sqlite:///:memory:"  # check refuses it
    # elsewhere relative to the current folder, as MLflow and its tools read it
    assert resolve_tracking_uri("sqlite:///runs/m.db", tmp_path) == "sqlite:///runs/m.db"


def test_stage_params_are_logged_and_a_changed_value_is_recorded_as_used(store):
    client, exp, _ = store
    run_id = start_run(client, exp, "evaluate", {})
    assert log_stage_params(client, run_id, {"seed": 0, "evaluate.attention_samples": 32}) == {}
    assert log_stage_params(client, run_id, {"seed": 0, "evaluate.attention_samples": 8}) == {
        "evaluate.attention_samples": "8"
    }
    run = client.get_run(run_id)
    assert run.data.params == {"seed": "0", "evaluate.attention_samples": "32"}  # MLflow keeps the first
    assert run.data.tags["used.evaluate.attention_samples"] == "8"
    log_stage_params(client, run_id, {"seed": 0, "evaluate.attention_samples": 32})  # back again
    assert client.get_run(run_id).data.tags["used.evaluate.attention_samples"] == "32"
    assert "used.seed" not in client.get_run(run_id).data.tags


def test_an_experiment_created_by_another_process_meanwhile_is_used(store, monkeypatch):
    client, exp_id, root = store
    looked_up = []

    def not_there_yet(name):  # another process creates it between this one's lookup and create
        looked_up.append(name)
        return None if len(looked_up) == 1 else MlflowClient.get_experiment_by_name(client, name)

    monkeypatch.setattr(client, "get_experiment_by_name", not_there_yet)
    assert experiment_id(client, "gatcluster-digits", root / "mlartifacts") == exp_id
    assert looked_up == ["gatcluster-digits", "gatcluster-digits"]  # MLflow refused the create

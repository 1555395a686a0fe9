"""The stages' library functions, in-process: layout, reports, honest summaries, contract, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params, params_to_dict
from gatcluster.data.sources import load_folder
from gatcluster.data.store import DatasetError, ImageDataset, write_dataset
from gatcluster.data.walk import SkippedFile, mark_output_folder
from gatcluster.pipeline.errors import StageError
from gatcluster.pipeline.evaluate_stage import confusion_csv, sample_indices, scores_text
from gatcluster.pipeline.export_stage import read_cluster_names
from gatcluster.pipeline.fetch_stage import report_predict_outputs, report_skipped, report_unfiled
from gatcluster.pipeline.layout import ProjectLayout
from gatcluster.pipeline.train_stage import (
    history_csv,
    interrupted_message,
    load_dataset,
    summary,
    training_run,
    what_was_trained,
)
from gatcluster.training.fit import FitResult

PARAMS = replace_params(Params(), {"train.iterations": 10})


def test_layout_owns_every_pipeline_path_under_its_root(tmp_path):
    layout = ProjectLayout(tmp_path)
    assert layout.model_file == tmp_path / "models" / "model.pt"
    assert layout.dataset_dir == tmp_path / "data" / "dataset"
    assert layout.checkpoint.parent == tmp_path / "checkpoints" / "train"
    assert layout.relative(layout.onnx_file) == "models/gatcluster.onnx"
    assert layout.relative(Path("/elsewhere/x")) == "/elsewhere/x"


def test_history_csv_has_a_column_per_metric_and_leaves_gaps_empty():
    text = history_csv([{"step": 1, "loss/total": -1.5}, {"step": 2, "loss/total": -2.0, "acc": 0.5}])
    assert text == "step,loss/total,acc\n1,-1.5,\n2,-2.0,0.5\n"


def test_summary_keeps_the_last_monitoring_scores_and_the_selected_head():
    history = [{"acc": 0.4, "seconds": 1.5}, {"acc": 0.6, "nmi": 0.5, "seconds": 2.25}]
    result = FitResult(None, history, 3, 12.345, [0.2, 0.1], 1)
    out = summary(result, PARAMS)
    assert out == {
        "iterations": 10,
        "seconds": 12.35,
        "iteration_seconds": 3.75,
        "resumed_from": 3,
        "acc": 0.6,
        "nmi": 0.5,
        "selected_head": 1,
        "head0_selection_loss": 0.2,
        "head1_selection_loss": 0.1,
    }


def test_with_several_heads_the_summary_scores_the_head_that_was_kept():
    # Monitoring scored head 0 (acc 0.5); head 1 was kept and predicts the labels exactly.
    labels = np.array([0, 0, 1, 1])
    heads = [np.array([0, 1, 0, 1]), np.array([1, 1, 0, 0])]
    result = FitResult(None, [{"acc": 0.5, "nmi": 0.0, "ari": -0.5}], 0, 1.0, [0.3, 0.1], 1, heads)
    out = summary(result, PARAMS, labels)
    assert (out["acc"], out["nmi"], out["ari"]) == (1.0, 1.0, 1.0) and out["selected_head"] == 1
    assert summary(result, PARAMS)["acc"] == 0.5  # no labels: only what monitoring saw


@pytest.mark.parametrize(
    ("resumed_from", "expected"),
    [
        (0, "trained 10 iterations in 4.0 s"),
        (6, "resumed after iteration 6: trained iterations 7-10 in 4.0 s"),
        (10, "nothing left to train: the checkpoint held all 10 iterations"),
    ],
)
def test_what_was_trained_tells_fresh_resumed_and_complete_runs_apart(resumed_from, expected):
    assert what_was_trained(FitResult(None, [], resumed_from, 4.0), PARAMS) == expected


def test_an_interrupt_says_whether_the_checkpoint_stays_to_resume(tmp_path):
    project = ProjectLayout(tmp_path / "p")
    assert interrupted_message(project) == (
        "interrupted: no checkpoint was written yet; run the train stage again (dvc repro) to resume"
    )
    project.checkpoint.parent.mkdir(parents=True)
    project.checkpoint.write_bytes(b"x")
    assert "checkpoints/train/last.pt is kept; run the train stage again" in interrupted_message(project)
    # `dvc exp run --temp/--queue`: the copy goes, and its checkpoint with it (it said "is kept").
    copy = ProjectLayout(tmp_path / "p" / ".dvc" / "tmp" / "exps" / "tmpab12cd")
    copy.checkpoint.parent.mkdir(parents=True)
    copy.checkpoint.write_bytes(b"x")
    said = interrupted_message(copy)
    assert "is kept" not in said and "DVC's temporary copy" in said and "from the start" in said


def test_train_refuses_data_of_another_source(tmp_path):
    layout = ProjectLayout(tmp_path)
    images = np.zeros((20, 32, 32, 1), np.uint8)
    write_dataset(ImageDataset(images, None, [], "digits", "resize"), layout.dataset_dir)
    with pytest.raises(DatasetError, match="holds 'digits' but data.source is 'mnist5k'"):
        load_dataset(PARAMS, layout)


def test_cluster_names_must_exist_and_match_the_model(tmp_path):
    layout = ProjectLayout(tmp_path)
    with pytest.raises(StageError, match="cannot read reports/clusters.json .*dvc repro evaluate"):
        read_cluster_names(layout, 3)
    layout.clusters_file.parent.mkdir(parents=True)
    layout.clusters_file.write_text(json.dumps([{"name": "a"}, {"name": "b"}]))
    with pytest.raises(StageError, match="names 2 clusters but the model has 3"):
        read_cluster_names(layout, 3)
    assert read_cluster_names(layout, 2) == ["a", "b"]


def test_evaluate_texts_and_seeded_samples():
    assert confusion_csv([]) == "actual,predicted\n"
    assert scores_text({"label_metrics": "absent: no labels"}) == "absent: no labels"
    assert scores_text({"acc": 0.5, "nmi": 0.25, "ari": 0.125}) == "ACC 0.500  NMI 0.250  ARI 0.125"
    first, again = sample_indices(100, 8, 3), sample_indices(100, 8, 3)
    assert first.tolist() == again.tolist() and len(set(first.tolist())) == 8
    assert len(sample_indices(5, 8, 3)) == 5


def test_fetch_names_the_first_skipped_files_and_where_all_are_listed(tmp_path, caplog):
    layout = ProjectLayout(tmp_path)
    skipped = [SkippedFile(tmp_path / "imgs" / f"b{i}.png", "truncated") for i in range(7)]
    with caplog.at_level("WARNING", logger="fetch"):
        report_skipped(skipped, layout)
    assert (
        "skipped 7 unreadable or non-image files:" in caplog.text and "imgs/b0.png: truncated" in caplog.text
    )
    assert "... and 2 more (all listed in data/dataset/skipped.tsv)" in caplog.text


def test_a_fetch_with_too_few_images_names_the_skipped_files_but_no_list_it_did_not_write(tmp_path, caplog):
    from gatcluster.config.loading import load_params
    from gatcluster.pipeline.fetch_stage import SHOWN_SKIPS, run_fetch
    from gatcluster.pipeline.preflight import PreflightError

    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.new("RGB", (6, 6), (40 * i, 80, 120)).save(tmp_path / "imgs" / f"real{i}.png")
    for i in range(SHOWN_SKIPS + 4):
        (tmp_path / "imgs" / f"placeholder{i:02d}.jpg").write_bytes(b"")
    (tmp_path / "params.yaml").write_text("data:\n  source: folder\n  root: imgs\ntrain:\n  sub_batch: 8\n")
    with caplog.at_level("WARNING", logger="fetch"), pytest.raises(PreflightError, match="has 3 images"):
        run_fetch(load_params(tmp_path / "params.yaml"), ProjectLayout(tmp_path))
    assert f"skipped {SHOWN_SKIPS + 4} unreadable or non-image files:" in caplog.text
    assert "placeholder00.jpg: empty file" in caplog.text and "... and 4 more\n" in caplog.text
    assert "skipped.tsv" not in caplog.text and not (tmp_path / "data" / "dataset").exists()


def test_fetch_names_the_images_that_left_class_folders_unlabelled(tmp_path, caplog):
    root = tmp_path / "photos"
    for name in ("cat/a.png", "dog/b.png", "stray.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (6, 6), (40, 80, 120)).save(root / name)
    (root / "notes.txt").write_text("skipped, so no cause of missing labels")
    dataset, skipped = load_folder(root, 4)
    with caplog.at_level("WARNING", logger="fetch"):
        report_unfiled(dataset, root, skipped, ProjectLayout(tmp_path))
    assert dataset.labels is None
    assert "unlabelled: 1 image lies directly in photos, outside its sub-folders (stray.png)" in caplog.text
    (root / "stray.png").rename(root / "cat" / "stray.png")
    caplog.clear()
    dataset, skipped = load_folder(root, 4)
    report_unfiled(dataset, root, skipped, ProjectLayout(tmp_path))
    assert dataset.classes == ["cat", "dog"] and not caplog.text


def test_fetch_names_the_gat_predict_output_it_left_out(tmp_path, caplog):
    root = tmp_path / "photos"
    for name in ("cat/a.png", "dog/b.png", "sorted/cluster-0/a.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (6, 6), (40, 80, 120)).save(root / name)
    mark_output_folder(root / "sorted")  # gat predict photos --sort-into photos/sorted --copy
    with caplog.at_level("WARNING", logger="fetch"):
        report_predict_outputs(root, ProjectLayout(tmp_path))
    assert "left out the gat predict output in photos/sorted: delete a folder's .gatcluster-output" in (
        caplog.text
    )
    assert load_folder(root, 4)[0].classes == ["cat", "dog"]


def test_evaluate_fits_the_images_to_the_trained_model_not_to_a_later_backbone(tmp_path):
    # Trained with small32; params.yaml moved to stl96 since (evaluate does not depend on model.*).
    from gatcluster.model import GATCluster
    from gatcluster.pipeline.evaluate_stage import write_reports

    trained = replace_params(Params(), {"model.width_mult": 0.125})
    model = GATCluster(trained.model, in_channels=1).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 32, 32, 1), dtype=np.uint8)
    dataset = ImageDataset(images, np.arange(24) % 3, ["a", "b", "c"], "mnist5k", "pad")
    later = replace_params(trained, {"model.backbone": "stl96", "evaluate.attention_samples": 4})
    report = write_reports(model, trained, dataset, later, ProjectLayout(tmp_path))
    assert report["num_images"] == 24 and (tmp_path / "reports" / "metrics.json").is_file()


@pytest.fixture(scope="module")
def local_store(tmp_path_factory) -> Path:
    """A project folder whose MLflow store (mlflow.db) exists: made once, its migrations take seconds."""
    from gatcluster.pipeline.tracking import open_tracking

    root = tmp_path_factory.mktemp("store")
    open_tracking(PARAMS, root, None)
    return root


def test_the_mlflow_run_is_continued_only_where_its_checkpoint_is_resumed(local_store):
    # The same test as fit's: params, training code and data set. Anything else retrains from
    # scratch, and must not append its curves to the earlier run.
    from gatcluster.pipeline.tracking import open_tracking
    from gatcluster.training.checkpoint import save_checkpoint
    from gatcluster.training.resume import code_digest

    layout = ProjectLayout(local_store)
    tracking = open_tracking(PARAMS, local_store, None)
    first = training_run(tracking, PARAMS, "sha-a", {}, layout, "train")
    state = {"params": params_to_dict(PARAMS), "code": code_digest(), "data": "sha-a", "iteration": 3}
    save_checkpoint(state, layout.checkpoint)  # what the interrupted run left
    assert training_run(tracking, PARAMS, "sha-a", {}, layout, "train") == first  # resumed in place
    save_checkpoint({**state, "code": "0" * 16}, layout.checkpoint)  # the training code changed since
    by_new_code = training_run(tracking, PARAMS, "sha-a", {}, layout, "train")
    assert by_new_code != first
    save_checkpoint(state, layout.checkpoint)
    other_data = training_run(tracking, PARAMS, "sha-b", {}, layout, "train")  # the images changed
    assert other_data not in (first, by_new_code)
    # Interrupted before its first checkpoint: the old data's checkpoint is no reason to continue.
    retried = training_run(tracking, PARAMS, "sha-b", {}, layout, "train")
    assert retried not in (first, by_new_code, other_data)
    # mlflow.experiment changed (not a training param): the checkpoint resumes, in a run there.
    renamed = replace_params(PARAMS, {"mlflow.experiment": "renamed"})
    save_checkpoint({**state, "data": "sha-b"}, layout.checkpoint)
    elsewhere = open_tracking(renamed, local_store, None)
    moved = training_run(elsewhere, renamed, "sha-b", {}, layout, "train")
    assert moved != retried and elsewhere.client.get_run(moved).info.experiment_id == elsewhere.experiment_id
    assert training_run(elsewhere, renamed, "sha-b", {}, layout, "train") == moved  # resumed in place there


def test_an_experiment_made_through_a_server_is_a_clear_error_on_the_local_store(local_store):
    # `gat server` serves the project's own mlflow.db; experiments it creates keep artifacts at
    # mlflow-artifacts:/..., which only the server can write: without it MLflow failed at the first
    # artifact, after training.
    from gatcluster.pipeline.tracking import open_tracking

    tracking = open_tracking(PARAMS, local_store, None)
    tracking.client.create_experiment("team", artifact_location="mlflow-artifacts:/7")
    team = replace_params(PARAMS, {"mlflow.experiment": "team"})
    with pytest.raises(StageError, match=r"experiment 'team' in sqlite:.* keeps its artifacts on a tracking"):
        open_tracking(team, local_store, None)


def test_a_sqlite_store_no_database_can_be_made_at_stops_a_stage_at_once(tmp_path):
    # DVC reruns the check stage only when params change: the stages ask too (MLflow retried a
    # folder as its database for two minutes, then failed).
    from gatcluster.pipeline.tracking import open_tracking

    (tmp_path / "runs").mkdir()
    said = r"^the MLflow store sqlite:///.*runs cannot be used: .*runs is a folder, not a database file$"
    with pytest.raises(StageError, match=said):
        open_tracking(PARAMS, tmp_path, f"sqlite:///{tmp_path / 'runs'}")


@pytest.mark.parametrize("reduced", [True, False])
def test_the_exported_contract_decodes_jpegs_as_fetch_decoded_the_training_images(tmp_path, reduced):
    from gatcluster.model import GATCluster
    from gatcluster.pipeline.export_stage import model_contract

    params = Params()
    model = GATCluster(params.model, 1, params.experimental)
    images = np.zeros((2, 32, 32, 1), dtype=np.uint8)
    dataset = ImageDataset(
        images, None, [], "folder", "pad", reduced_jpeg=reduced
    )  # an older manifest: False
    names = [f"cluster {k}" for k in range(params.model.num_clusters)]
    contract = model_contract(model, params, dataset, names, ProjectLayout(tmp_path))
    assert contract.reduced_jpeg is reduced


def test_fetch_of_an_image_folder_counts_its_files_on_stderr(tmp_path, capsys):
    from gatcluster.pipeline.fetch_stage import run_fetch

    root = tmp_path / "photos"
    for kind in ("a", "b"):
        (root / kind).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (40, 30), (200 if kind == "a" else 0, i * 40, 90)).save(root / kind / f"{i}.png")
    settings = {"data.source": "folder", "data.root": str(root), "model.num_clusters": 2}
    params = replace_params(Params(), {**settings, "train.sub_batch": 4, "train.large_batch": 10})
    report = run_fetch(params, ProjectLayout(tmp_path))
    assert report.startswith("fetched folder: 10 images")
    counter = capsys.readouterr().err
    assert "fetch folder" in counter and "10 files" in counter, counter

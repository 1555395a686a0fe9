"""The `gat` app through CliRunner and the installed script: version, presets, errors."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gatcluster import __version__
from gatcluster.cli.app import app
from gatcluster.data.walk import OUTPUT_MARKER
from gatcluster.serving.contract import read_contract

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def process_umask() -> int:
    """This process's umask, read without changing it (Linux)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:")), 8)


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"gatcluster {__version__}"


def test_preset_list_names_each_preset():
    result = runner.invoke(app, ["preset"])
    assert result.exit_code == 0
    assert "stl10" in result.stdout and "faithful" in result.stdout and "ImageNet-10" in result.stdout


def test_preset_rewrites_params_in_place(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    result = runner.invoke(app, ["preset", "stl10", "--params", str(params)])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(params.read_text())
    assert data["data"]["source"] == "stl10" and data["model"]["backbone"] == "stl96"
    assert "# K, the number of clusters" in params.read_text()


def project_params_with_data(folder: Path, source: str, root: str) -> Path:
    """The project's params.yaml copied into `folder` with data.source and data.root set."""
    text = (ROOT / "params.yaml").read_text().replace("source: mnist5k", f"source: {source}")
    params = folder / "params.yaml"
    params.write_text(text.replace("root: null", f"root: {root}"))
    return params


def test_preset_to_a_source_reading_another_root_resets_data_root_and_says_so(tmp_path):
    # An image folder is no CIFAR copy: fetch must neither read it as one nor download into it.
    params = project_params_with_data(tmp_path, "folder", "/my/photos")
    result = runner.invoke(app, ["preset", "cifar10", "--params", str(params)])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(params.read_text())["data"]
    assert data == {"source": "cifar10", "root": None, "grayscale": True}
    assert "data.root reset to null: /my/photos was set for data.source folder" in result.stdout
    assert "# offline mirror" in params.read_text()  # the line's comment stays


def test_preset_keeps_a_root_its_source_reads_alike(tmp_path):
    # One folder of torchvision-layout copies serves CIFAR-10 and CIFAR-100.
    params = project_params_with_data(tmp_path, "cifar10", "/mirror")
    result = runner.invoke(app, ["preset", "cifar100-20", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(params.read_text())["data"]["root"] == "/mirror"
    assert "data.root" not in result.stdout


def test_preset_reads_and_writes_utf8_in_an_ascii_locale(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        "# größe: 32 px — the model's input\n" + (ROOT / "params.yaml").read_text(), encoding="utf-8"
    )
    gat = Path(sys.executable).parent / "gat"
    ascii_locale = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    done = subprocess.run(
        [str(gat), "preset", "faithful", "--params", str(params)],  # faithful.yaml holds a non-ASCII "§"
        capture_output=True,
        text=True,
        timeout=60,
        env=ascii_locale,
    )
    assert done.returncode == 0, done.stderr
    assert params.read_text(encoding="utf-8").startswith("# größe: 32 px — the model's input\n")


def test_preset_writes_through_a_linked_params_file(tmp_path):
    (tmp_path / "kept").mkdir()
    shutil.copy(ROOT / "params.yaml", tmp_path / "kept" / "params.yaml")
    (tmp_path / "params.yaml").symlink_to(Path("kept") / "params.yaml")
    result = runner.invoke(app, ["preset", "stl10", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "params.yaml").is_symlink()
    assert "source: stl10" in (tmp_path / "kept" / "params.yaml").read_text()


def test_preset_into_a_folder_it_cannot_write_says_so_once(tmp_path, monkeypatch):
    from gatcluster import atomic

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")

    def refused(parent, prefix):  # a read-only folder (root ignores modes, so the refusal is staged)
        raise PermissionError(13, "Permission denied", str(parent / prefix))

    monkeypatch.setattr(atomic, "make_temp_file", refused)
    result = runner.invoke(app, ["preset", "stl10", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 1
    line = (
        f"error: cannot write {tmp_path / 'params.yaml'}: Permission denied; the previous params.yaml is kept"
    )
    assert result.stderr.strip() == line


def test_preset_keeps_the_files_line_endings(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_bytes((ROOT / "params.yaml").read_bytes().replace(b"\n", b"\r\n"))  # saved on Windows
    result = runner.invoke(app, ["preset", "stl10", "--params", str(params)])
    assert result.exit_code == 0, result.output
    written = params.read_bytes()
    assert b"source: stl10" in written and written.count(b"\n") == written.count(b"\r\n")


def test_preset_keeps_a_mostly_lf_file_lf_and_the_files_permissions(tmp_path):
    params = tmp_path / "params.yaml"
    lines = (ROOT / "params.yaml").read_bytes().split(b"\n")
    params.write_bytes(b"\r\n".join(lines[:3]) + b"\r\n" + b"\n".join(lines[3:]))  # a few CRLF lines
    params.chmod(0o664)  # group-writable, as in a shared project folder
    result = runner.invoke(app, ["preset", "stl10", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert b"\r\n" not in params.read_bytes() and params.stat().st_mode & 0o777 == 0o664


def test_preset_on_an_unreadable_params_file_is_one_line(tmp_path):
    (tmp_path / "params.yaml").mkdir()  # unreadable as a file, also for root
    result = runner.invoke(app, ["preset", "stl10", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "params.yaml" in result.output and "error" in result.output, result.output


def test_unknown_preset_is_a_usage_error_that_changes_nothing(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    result = runner.invoke(app, ["preset", "nope", "--params", str(params)])
    assert result.exit_code == 2 and "unknown preset 'nope'" in result.stderr
    # Outside a project the name is still what is wrong, not the missing params.yaml.
    result = runner.invoke(app, ["preset", "stl-10", "--params", str(tmp_path / "elsewhere.yaml")])
    assert result.exit_code == 2 and "unknown preset 'stl-10' (did you mean stl10?)" in result.stderr
    assert params.read_text() == (ROOT / "params.yaml").read_text()


def test_preset_on_broken_yaml_is_one_line_that_changes_nothing(tmp_path):
    params = tmp_path / "params.yaml"
    broken = (ROOT / "params.yaml").read_text().replace("  lr: 0.002", "  lr: [0.002", 1)
    params.write_text(broken)
    result = runner.invoke(app, ["preset", "mnist", "--params", str(params)])
    assert result.exit_code == 2 and "is not valid YAML (line" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert params.read_text() == broken


@pytest.mark.parametrize("command", ["check", "preset"])
def test_a_broken_params_file_in_an_oddly_named_folder_is_still_one_line(tmp_path, command):
    folder = tmp_path / os.fsdecode(b"odd\xff\nname")
    folder.mkdir()
    (folder / "params.yaml").write_text("train: [\n")
    args = [command, *(["mnist"] if command == "preset" else []), "--params", str(folder / "params.yaml")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "odd\\xff\\nname/params.yaml is not valid YAML" in result.stderr


def test_check_validates_params_against_the_data_size(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    result = runner.invoke(app, ["check", "--params", str(params)])
    assert result.exit_code == 0 and "is valid (the size of mnist5k: 5000 images)" in result.stdout
    params.write_text(params.read_text().replace("  large_batch: 1000", "  large_batch: 6000", 1))
    params.write_text(params.read_text().replace("  sub_batch: 128", "  sub_batch: 5500", 1))
    result = runner.invoke(app, ["check", "--params", str(params)])
    assert result.exit_code == 2 and "has 5000 images, fewer than train.sub_batch (5500)" in result.stderr


def test_check_and_preset_name_an_odd_params_file_on_one_line(tmp_path):
    params = tmp_path / "two\nlines.yaml"  # a newline in the name could pass for another line
    shutil.copy(ROOT / "params.yaml", params)
    result = runner.invoke(app, ["check", "--params", str(params)])
    shown = f"{tmp_path}/two\\nlines.yaml"
    assert result.exit_code == 0 and result.stdout.startswith(f"{shown} is valid (")
    result = runner.invoke(app, ["preset", "mnist", "--params", str(params)])
    assert result.exit_code == 0 and result.stdout.startswith(f"{shown}: preset mnist set ")


def test_check_looks_at_the_environment_the_stages_read(tmp_path, monkeypatch):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:///tmp/mlruns")
    result = runner.invoke(app, ["check", "--params", str(params)])
    assert result.exit_code == 2 and "MLFLOW_TRACKING_URI file:///tmp/mlruns is a file store" in result.stderr
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    monkeypatch.setenv("GAT_THREADS", "two")
    result = runner.invoke(app, ["check", "--params", str(params)])
    assert (
        result.exit_code == 2
        and "GAT_THREADS must be a whole number from 1 to 1024, got 'two'" in result.stderr
    )


@pytest.mark.parametrize("command", ["preset mnist", "check"])
def test_missing_params_file_is_a_usage_error(tmp_path, command, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside a project, --params not given
    result = runner.invoke(app, command.split())
    said = "error: params.yaml not found: run this in the project folder or pass --params\n"
    assert result.exit_code == 2 and result.stderr == said
    result = runner.invoke(app, [*command.split(), "--params", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and result.stderr == f"error: --params {tmp_path / 'none.yaml'} not found\n"
    result = runner.invoke(app, [*command.split(), "--params", str(tmp_path)])  # a folder
    assert result.exit_code == 2 and f"{tmp_path} is a folder, not a file" in result.stderr
    result = runner.invoke(app, [*command.split(), "--params", "/dev/null"])
    assert result.exit_code == 2 and "/dev/null is not a regular file" in result.stderr
    result = runner.invoke(app, [*command.split(), "--params", "x" * 300])  # was an OSError traceback
    assert result.exit_code == 2 and "cannot be read (File name too long)" in result.stderr


def test_promote_names_the_projects_model_from_a_subfolder(tmp_path, monkeypatch):
    from gatcluster.cli.app import registered_model_name

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("export:\n  registered_model: team-model\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # no params.yaml here: it fell back to 'gatcluster'
    assert registered_model_name(None, None) == "team-model"
    assert registered_model_name("other", None) == "other"


def test_promote_never_falls_back_from_params_it_cannot_read_or_a_blank_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no mlflow.db: any fall-back would reach the store's error instead
    for args, said in (
        (["--params", str(tmp_path / "none.yaml")], "none.yaml not found"),
        (["--params", str(tmp_path)], "is a folder, not a file"),
        (["--registered-model", ""], "--registered-model '': give the registered model's name"),
        (["--registered-model", "a\nb"], "--registered-model 'a\\nb'"),
        (["--alias", "v2"], "--alias 'v2': 'latest' and v<number> are reserved by MLflow"),
    ):
        result = runner.invoke(app, ["promote", "1", *args])
        assert result.exit_code == 2 and said in result.stderr, result.stderr


def test_verbose_is_a_global_option(tmp_path, trained_onnx, digits_dataset):
    digits_folder(tmp_path / "d", digits_dataset.images[:2])
    args = ["--verbose", "predict", str(tmp_path / "d"), "--model", str(trained_onnx[2])]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3  # header + 2 rows


def test_installed_script_runs():
    gat = Path(sys.executable).parent / "gat"
    done = subprocess.run([str(gat), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and __version__ in done.stdout


# --- gat predict / gat info ---------------------------------------------------------------------


def make_bad_inputs(folder: Path) -> dict[str, str]:
    """Every awkward input the CLI must survive; {file name: expected skip reason} of the bad ones."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "photo with space.jpg")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray((rng.integers(0, 65535, (20, 20))).astype(np.uint16)).save(folder / "deep16.png")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray(np.dstack([rgb, rng.integers(0, 255, (40, 30), dtype=np.uint8)])).save(
        folder / "alpha.png"
    )
    Image.fromarray(rgb[..., 0]).save(folder / "gray.png")
    Image.fromarray(rgb[..., 0]).save(folder / "ünïcødé 数字.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(folder / "rotated.jpg", exif=exif)
    Image.new("L", (3000, 2000), 128).save(folder / "large.png")
    (folder / "sub" / "empty").mkdir(parents=True)
    os.symlink(folder, folder / "sub" / "loop")
    Image.fromarray(rgb).save(
        folder / "noext", format="PNG"
    )  # an image without an extension: found by content
    (folder / "notes.txt").write_text("not an image, not an image name: ignored")
    good = (folder / "photo with space.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "zero.png").write_bytes(b"")
    (folder / "text.png").write_text("hello")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return {"truncated.jpg": "truncated", "zero.png": "empty", "text.png": "not an image", "corrupt.png": ""}


def digits_folder(folder: Path, images) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img[..., 0]).save(folder / f"{i:04d}.png")
    return sorted(folder.iterdir())


def test_predict_every_bad_input_is_listed_and_the_rest_clustered(tmp_path, trained_onnx):
    bad = make_bad_inputs(tmp_path / "in")
    out = tmp_path / "preds.csv"
    result = runner.invoke(
        app, ["predict", str(tmp_path / "in"), "--model", str(trained_onnx[2]), "--out", str(out)]
    )
    assert result.exit_code == 3, result.output
    for name, reason in bad.items():
        assert f"skipped {tmp_path / 'in' / name}: {reason}" in result.stderr
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    clustered = {Path(r["path"]).name for r in rows}
    expected = {"photo with space.jpg", "cmyk.jpg", "deep16.png", "palette.png", "alpha.png", "gray.png"}
    assert expected | {"ünïcødé 数字.png", "rotated.jpg", "large.png", "noext"} == clustered
    assert "1 non-image file ignored" in result.stderr and "on CPUExecutionProvider" in result.stderr
    assert abs(sum(float(rows[0][f"p_{k}"]) for k in range(10)) - 1) < 1e-4
    # The bar counts the skipped files too, so it ends full: 14 of 14 (10 clustered, 4 skipped).
    assert f"{len(rows) + len(bad)}/{len(rows) + len(bad)}" in result.stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_each_output_format_parses_back(tmp_path, trained_onnx, digits_dataset, fmt):
    digits_folder(tmp_path / "d", digits_dataset.images[:10])
    out = tmp_path / f"preds.{fmt}"
    result = runner.invoke(
        app, ["predict", str(tmp_path / "d"), "--model", str(trained_onnx[2]), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        rows = list(csv.DictReader(out.open()))
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    else:
        import pyarrow.parquet as pq

        rows = pq.read_table(out).to_pylist()
    assert len(rows) == 10 and {"path", "cluster", "cluster_name", "confidence", "p_9"} <= set(rows[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["d", out.name])  # no temp file left


def test_stdout_table_and_jsonl_format(tmp_path, trained_onnx, digits_dataset):
    digits_folder(tmp_path / "d", digits_dataset.images[:5])
    result = runner.invoke(
        app, ["predict", str(tmp_path / "d"), "--model", str(trained_onnx[2]), "--format", "jsonl"]
    )
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 5 and rows[0]["cluster_name"].startswith("digit-")


def test_predict_equals_the_pytorch_model_on_bundled_digits(tmp_path, trained_onnx, digits_dataset):
    import torch

    from gatcluster.data.fit import fit_images
    from gatcluster.data.prepare import prepare_images
    from gatcluster.training.passes import predict_clusters

    model, _, path = trained_onnx
    digits_folder(tmp_path / "d", digits_dataset.images[:300])
    result = runner.invoke(app, ["predict", str(tmp_path / "d"), "--model", str(path), "--batch-size", "32"])
    rows = list(csv.DictReader(result.stdout.splitlines()))
    images = prepare_images(fit_images(digits_dataset.images[:300], 32, "resize"), 32, True)
    expected = predict_clusters(model, images, 100, True, torch.device("cpu")).tolist()
    assert [int(r["cluster"]) for r in rows] == expected


def test_attention_overlays_are_written(tmp_path, trained_onnx, digits_dataset):
    digits_folder(tmp_path / "d", digits_dataset.images[:3])
    args = [
        "predict",
        str(tmp_path / "d"),
        "--model",
        str(trained_onnx[2]),
        "--attention-dir",
        str(tmp_path / "att"),
    ]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0 and len(list((tmp_path / "att").glob("*.png"))) == 3
    assert "cluster_name = the name stored in the model" in result.stderr


@pytest.mark.parametrize("where", ["empty", "missing"])
def test_nothing_to_cluster_exits_1_and_writes_no_table(tmp_path, trained_onnx, where):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "p.csv"
    args = ["predict", str(tmp_path / where), "--model", str(trained_onnx[2]), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "no image could be clustered; no table written" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("out", "flag", "message"),
    [
        ("x.json", None, "cannot tell the table format from --out {dir}/x.json"),  # the path as given
        ("x.xlsx", None, "cannot tell the table format from --out {dir}/x.xlsx"),
        ("y.csv", "jsonl", "--out {dir}/y.csv is csv by its name but --format is jsonl"),
        ("folder", None, "is a folder: give a file name"),
    ],
)
def test_output_name_problems_are_usage_errors_before_any_work(tmp_path, trained_onnx, out, flag, message):
    (tmp_path / "folder").mkdir()
    args = ["predict", str(tmp_path), "--model", str(trained_onnx[2]), "--out", str(tmp_path / out)]
    result = runner.invoke(app, [*args, *(["--format", flag] if flag else [])])
    message = message.replace("{dir}", str(tmp_path))
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("option", ["--out", "--attention-dir"])
def test_an_unwritable_output_is_one_line_before_any_image_is_read(
    tmp_path, trained_onnx, digits_dataset, option
):
    digits_folder(tmp_path / "d", digits_dataset.images[:3])
    (tmp_path / "a-file").write_text("x")
    target = tmp_path / "a-file" / ("p.csv" if option == "--out" else "att")  # below a file: unwritable
    args = ["predict", str(tmp_path / "d"), "--model", str(trained_onnx[2]), option, str(target)]
    result = runner.invoke(app, args)
    line = f"error: cannot write {target}: {tmp_path / 'a-file'} is a file, not a folder"
    assert result.exit_code == 1 and line in result.stderr, result.stderr
    assert "Traceback" not in result.output and "images in" not in result.stderr  # nothing was clustered


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize("option", ["--out", "--attention-dir", "--sort-into"])
def test_an_output_in_proc_is_not_said_to_be_missing(tmp_path, trained_onnx, digits_dataset, option):
    digits_folder(tmp_path / "d", digits_dataset.images[:3])
    target = "/proc/x.csv" if option == "--out" else "/proc/out/deeper"
    result = runner.invoke(
        app, ["predict", str(tmp_path / "d"), "--model", str(trained_onnx[2]), option, target]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    # As root /proc answers "No such file or directory" about itself (was the whole message); else
    # EACCES, or EROFS where /proc is mounted read-only.
    said = "/proc takes no new files or folders (its file system said: No such file or directory)"
    others = ("Permission denied", "Read-only file system")
    assert said in result.stderr or any(o in result.stderr for o in others), result.stderr
    assert f"error: cannot write {target}: " in result.stderr  # the user's path, not only its folder
    assert "images in" not in result.stderr


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux's /proc")
def test_out_naming_stdout_is_a_usage_error_not_a_replaced_file(tmp_path, trained_onnx, digits_dataset):
    digits_folder(tmp_path / "d", digits_dataset.images[:3])
    args = ["predict", str(tmp_path / "d"), "--model", str(trained_onnx[2]), "--out", "/dev/stdout"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--out /dev/stdout is an open descriptor" in result.stderr
    assert "images in" not in result.stderr


@pytest.mark.parametrize("option", ["--out", "--attention-dir", "--gallery", "--sort-into"])
def test_an_output_name_too_long_or_a_broken_link_is_a_usage_error_before_any_work(
    tmp_path, trained_onnx, option
):
    (tmp_path / "gone").symlink_to(tmp_path / "moved")
    too_long = tmp_path / ("x" * 300 + (".csv" if option == "--out" else ""))  # was an OSError traceback
    cases = [(too_long, "cannot be written (File name too long)")]
    if option != "--out":  # --out through a broken link writes where it points (links are written through)
        cases.append((tmp_path / "gone", "is a broken symlink: give a folder"))
    for target, said in cases:
        args = ["predict", str(tmp_path), "--model", str(trained_onnx[2]), option, str(target)]
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and f"error: {option} {target} {said}" in result.stderr, result.stderr
        assert "Traceback" not in result.output


def test_out_never_replaces_an_input_the_model_or_a_device(tmp_path, trained_onnx, digits_dataset):
    photo = digits_folder(tmp_path / "d", digits_dataset.images[:3])[0]
    model = tmp_path / "m.onnx"
    model.write_bytes(trained_onnx[2].read_bytes())
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    kept = {photo: photo.read_bytes(), model: model.read_bytes()}
    for out, code in ((photo, 2), (model, 2), (fifo, 1)):
        args = ["predict", str(tmp_path / "d"), "--model", str(model), "--format", "csv", "--out", str(out)]
        result = runner.invoke(app, args)
        assert result.exit_code == code and "error: cannot" in result.stderr, result.stderr
        assert "Traceback" not in result.output and "images in" not in result.stderr  # before any work
    assert all(path.read_bytes() == data for path, data in kept.items())
    assert stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.mark.parametrize(
    ("model_bytes", "message"),
    [(None, "model file not found"), (b"junk", "not a readable ONNX"), ("dir", "a folder, not a model")],
)
def test_missing_or_corrupt_model_is_one_line(tmp_path, model_bytes, message):
    model = tmp_path / "m.onnx"
    if model_bytes == "dir":
        model.mkdir()
    elif model_bytes is not None:
        model.write_bytes(model_bytes)
    result = runner.invoke(app, ["predict", str(tmp_path), "--model", str(model)])
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.output


def test_usage_errors_exit_2(tmp_path, trained_onnx):
    assert runner.invoke(app, ["predict", str(tmp_path), "--format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["predict", "--model", str(trained_onnx[2])]).exit_code == 2  # no PATH
    assert runner.invoke(app, ["predict", str(tmp_path), "--batch-size", "0"]).exit_code == 2
    many = runner.invoke(app, ["predict", str(tmp_path), "--threads", str(10 * (os.cpu_count() or 1))])
    assert many.exit_code == 2 and "CPUs" in many.stderr
    no_file = runner.invoke(app, ["predict", str(tmp_path), "--format", "parquet"])
    assert no_file.exit_code == 2 and "Parquet output needs --out" in no_file.stderr


@pytest.mark.parametrize("version", ["\u00b2", "x1", "9" * 19])  # a superscript two passes str.isdigit
def test_promote_takes_an_ascii_version_number(version):
    result = runner.invoke(app, ["promote", version])
    assert result.exit_code == 2 and "VERSION must be a number or 'latest'" in result.stderr


@pytest.mark.parametrize("uri", ["models:/", "models:/gatcluster@", "models:/gatcluster/abc"])
def test_a_mistyped_registry_uri_is_a_usage_error_before_any_store(tmp_path, monkeypatch, uri):
    monkeypatch.chdir(tmp_path)  # no mlflow.db here: that was said first
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for command in (["info", uri], ["predict", ".", "--model", uri]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and f"error: {uri!r} is not a registry model URI" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("command", ["promote 1", "predict . --model models:/gatcluster/1"])
def test_a_damaged_mlflow_store_is_one_line(tmp_path, monkeypatch, command):
    (tmp_path / "mlflow.db").write_bytes(b"not a database" * 100)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, command.split())
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert f"error: the MLflow store at sqlite:///{tmp_path / 'mlflow.db'} failed: " in result.stderr
    assert "file is not a database" in result.stderr


def test_the_model_cache_folder_is_absolute(tmp_path, monkeypatch):
    from gatcluster.cli.app import cache_root

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAT_CACHE_DIR", "~/shared-cache")
    assert cache_root() == tmp_path / "shared-cache"
    monkeypatch.setenv("GAT_CACHE_DIR", "rel")
    assert cache_root() == tmp_path / "rel"
    monkeypatch.delenv("GAT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as the XDG specification says
    assert cache_root() == tmp_path / ".cache" / "gatcluster"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "gatcluster"


def test_a_cache_folder_of_an_unknown_user_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("GAT_CACHE_DIR", "~no-such-user-here/cache")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////nonexistent/mlflow.db")
    result = runner.invoke(app, ["info", "models:/gatcluster/1"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "GAT_CACHE_DIR ~no-such-user-here/cache: no home folder is known" in result.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a usable GPU")
def test_device_cuda_without_gpu_is_a_clear_error(tmp_path, trained_onnx):
    result = runner.invoke(
        app, ["predict", str(tmp_path), "--model", str(trained_onnx[2]), "--device", "cuda"]
    )
    assert result.exit_code == 1 and "no usable CUDA GPU" in result.stderr


def test_info_prints_the_contract(trained_onnx):
    result = runner.invoke(app, ["info", str(trained_onnx[2])])
    assert result.exit_code == 0 and "input_size: 32" in result.stdout and "source: digits" in result.stdout


def test_installed_script_predicts_and_writes_atomically(tmp_path, trained_onnx, digits_dataset):
    digits_folder(tmp_path / "d", digits_dataset.images[:4])
    gat = Path(sys.executable).parent / "gat"
    out = tmp_path / "p.csv"
    cmd = [str(gat), "predict", str(tmp_path / "d"), "--model", str(trained_onnx[2]), "--out", str(out)]
    done = subprocess.run(
        [*cmd, "--attention-dir", str(tmp_path / "att")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 5
    assert "Warning" not in done.stderr  # no library warnings in a normal run
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~process_umask()


def test_installed_script_lists_every_bad_input_and_exits_3(tmp_path, trained_onnx):
    bad = make_bad_inputs(tmp_path / "in")
    gat = Path(sys.executable).parent / "gat"
    cmd = [
        str(gat),
        "predict",
        str(tmp_path / "in"),
        "--model",
        str(trained_onnx[2]),
        "--out",
        str(tmp_path / "p.jsonl"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr
    for name, reason in bad.items():
        assert f"skipped {tmp_path / 'in' / name}: {reason}" in done.stderr
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 10


def test_sort_into_and_gallery_follow_the_table(tmp_path, trained_onnx, digits_dataset):
    files = digits_folder(tmp_path / "d", digits_dataset.images[:40])
    (tmp_path / "d" / "sub").mkdir()
    same_name = tmp_path / "d" / "sub" / files[0].name  # two inputs called 0000.png
    shutil.copy(files[0], same_name)
    shutil.copy(files[1], tmp_path / "d" / "ünïcødé 数字.png")
    sorted_dir = tmp_path / "sorted"
    args = ["predict", str(tmp_path / "d"), "--model", str(trained_onnx[2]), "--out", str(tmp_path / "p.csv")]
    # every member on show (42), so the page must name the Unicode file whichever cluster it falls in
    args += [
        "--sort-into",
        str(sorted_dir),
        "--gallery",
        str(tmp_path / "gallery"),
        "--gallery-members",
        "42",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with open(tmp_path / "p.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    links = sorted(sorted_dir.rglob("*.png"))
    assert len(rows) == len(links) == 42 and all(p.is_symlink() for p in links)
    by_target = {os.readlink(p): p.parent.name for p in links}
    assert {str(Path(r["path"]).resolve()): r["cluster_name"] for r in rows} == by_target
    assert any(p.name == "0000 (2).png" for p in links)
    assert f"linked 42 images into {sorted_dir}" in result.stderr and "1 renamed" in result.stderr
    page = (tmp_path / "gallery" / "gallery.html").read_text()
    assert "ünïcødé 数字.png" in page and len(list((tmp_path / "gallery").glob("cluster-*.png"))) == 10


def test_a_run_that_clusters_nothing_keeps_an_earlier_gallery(tmp_path, trained_onnx, digits_dataset):
    digits_folder(tmp_path / "d", digits_dataset.images[:5])
    (tmp_path / "empty").mkdir()
    gallery = tmp_path / "gallery"
    args = ["--model", str(trained_onnx[2]), "--out", str(tmp_path / "p.csv"), "--gallery", str(gallery)]
    assert runner.invoke(app, ["predict", str(tmp_path / "d"), *args]).exit_code == 0
    before = {p.name: p.read_bytes() for p in gallery.iterdir()}
    result = runner.invoke(app, ["predict", str(tmp_path / "empty"), *args])
    assert result.exit_code == 1 and "no image could be clustered" in result.stderr
    assert {p.name: p.read_bytes() for p in gallery.iterdir()} == before


def test_an_existing_cluster_folder_that_takes_no_file_is_named_before_any_image_is_read(
    tmp_path, trained_onnx, digits_dataset
):
    locked = Path("/sys/kernel")  # refuses new files, to root too (chmod does not stop root)
    if not locked.is_dir() or os.access(locked, os.W_OK) and locked.stat().st_uid != 0:
        pytest.skip("no folder here that refuses files to every user")
    digits_folder(tmp_path / "d", digits_dataset.images[:5])
    sorted_dir = tmp_path / "sorted"
    sorted_dir.mkdir()
    for name in read_contract(trained_onnx[2]).cluster_names:  # another user's folders, say
        (sorted_dir / name).symlink_to(locked)
    args = ["predict", str(tmp_path / "d"), "--model", str(trained_onnx[2]), "--sort-into", str(sorted_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and f"error: cannot write {sorted_dir / 'digit-0'}: " in result.stderr
    assert "images in" not in result.stderr and "Traceback" not in result.output


def test_the_summary_names_each_cluster_as_the_gallery_heads_it(tmp_path, trained_onnx, digits_dataset):
    from gatcluster.cli.predict_command import cluster_label

    digits_folder(tmp_path / "d", digits_dataset.images[:1])
    args = ["predict", str(tmp_path / "d"), "--model", str(trained_onnx[2]), "--out", str(tmp_path / "p.csv")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with open(tmp_path / "p.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    # The table's number and the name --sort-into gives the folder, in the gallery's "2 (cat)" form.
    cluster = f"{row['cluster']} ({row['cluster_name']})"
    assert f"1 image in 1 cluster ({cluster}: 1); 0 skipped; 0 non-image files" in result.stderr
    assert cluster_label(7, "cluster 7") == "7"  # an unnamed cluster, once


def test_cluster_names_from_the_model_file_are_printed_as_text_on_one_line(
    tmp_path, trained_onnx, digits_dataset
):
    import onnx

    model = onnx.load(str(trained_onnx[2]))
    names = [f"[/x] c{k}\x1b[31m\nfake line" for k in range(10)]  # rich markup, an escape, a newline
    for prop in model.metadata_props:
        if prop.key == "gatcluster.cluster_names":
            prop.value = json.dumps(names)
    onnx.save(model, str(tmp_path / "odd.onnx"))
    digits_folder(tmp_path / "d", digits_dataset.images[:20])
    out = tmp_path / "p.csv"
    result = runner.invoke(
        app, ["predict", str(tmp_path / "d"), "--model", str(tmp_path / "odd.onnx"), "--out", str(out)]
    )
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    summary = next(line for line in result.stderr.splitlines() if " images in " in line)
    assert "[/x] c" in summary and "\\x1b[31m\\nfake line" in summary and "\x1b" not in summary
    info = runner.invoke(app, ["info", str(tmp_path / "odd.onnx")])
    assert info.exit_code == 0 and "\x1b" not in info.stdout and "\nfake" not in info.stdout


def test_a_link_that_cannot_be_made_is_named_not_the_picture_it_points_to():
    from gatcluster.cli.predict_command import write_error

    err = OSError(1, "Operation not permitted", "/photos/0000.png", None, "/sorted/digit-2/0000.png")
    assert write_error(err) == "error: cannot write /sorted/digit-2/0000.png: Operation not permitted"


def test_a_file_name_with_a_newline_stays_one_line_of_the_skipped_list(
    tmp_path, trained_onnx, digits_dataset
):
    digits_folder(tmp_path / "d", digits_dataset.images[:3])
    (tmp_path / "d" / "evil.png: not an image\nskipped fake.png").write_bytes(b"junk")
    args = ["predict", str(tmp_path / "d"), "--model", str(trained_onnx[2]), "--out", str(tmp_path / "p.csv")]
    result = runner.invoke(app, args)
    assert result.exit_code == 3
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert skipped == [f"skipped {tmp_path / 'd'}/evil.png: not an image\\nskipped fake.png: not an image"]


def test_a_second_sort_says_which_inputs_an_earlier_run_put_into_another_cluster(
    tmp_path, trained_onnx, digits_dataset
):
    digits_folder(tmp_path / "d", digits_dataset.images[:5])
    sorted_dir = tmp_path / "sorted"
    args = ["predict", str(tmp_path / "d"), "--model", str(trained_onnx[2]), "--sort-into", str(sorted_dir)]
    assert runner.invoke(app, args).exit_code == 0
    link = sorted(sorted_dir.rglob("0000.png"))[0]  # as if another model had sorted it elsewhere
    names = read_contract(trained_onnx[2]).cluster_names
    other = sorted_dir / next(name for name in names if name != link.parent.name)
    other.mkdir(exist_ok=True)
    link.rename(other / link.name)
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "linked 1 images into" in result.stderr
    assert "4 were already there" in result.stderr
    assert "1 are also in another cluster folder, where an earlier run put them" in result.stderr


def test_outputs_inside_the_input_folder_are_never_clustered_on_a_second_run(
    tmp_path, trained_onnx, digits_dataset
):
    photos = tmp_path / "d"
    digits_folder(photos, digits_dataset.images[:12])
    args = ["predict", str(photos), "--model", str(trained_onnx[2]), "--out", str(tmp_path / "p.csv")]
    args += ["--sort-into", str(photos / "sorted"), "--gallery", str(photos / "gallery")]
    args += ["--attention-dir", str(photos / "att")]
    for _ in range(2):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        with open(tmp_path / "p.csv", newline="") as handle:
            assert len(list(csv.DictReader(handle))) == 12  # its links, gallery and overlays left out
    assert len(list((photos / "sorted").rglob("*.png"))) == 12
    plain = ["predict", str(photos), "--model", str(trained_onnx[2]), "--out", str(tmp_path / "q.csv")]
    result = runner.invoke(app, plain)  # without the options that named them: still left out, named
    assert result.exit_code == 0, result.output
    assert f"left out the gat predict output in {photos / 'att'}, {photos / 'gallery'}" in result.stderr
    with open(tmp_path / "q.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 12


def test_a_sort_into_folder_that_holds_the_inputs_clusters_them_and_leaves_out_only_its_links(
    tmp_path, trained_onnx, digits_dataset
):
    photos = tmp_path / "d"
    digits_folder(photos / "new", digits_dataset.images[:6])
    model = ["--model", str(trained_onnx[2])]
    for inputs, into in (
        ([photos], photos),  # photos --sort-into photos
        ([photos / "new"], photos),  # lib/new --sort-into lib
        (sorted((photos / "new").glob("*.png")), photos / "new"),  # photo files --sort-into their folder
    ):
        for _ in range(2):  # the second time, the links the first one made are not inputs
            out = tmp_path / "p.csv"
            args = ["predict", *map(str, inputs), *model, "--out", str(out), "--sort-into", str(into)]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
            with open(out, newline="") as handle:
                rows = list(csv.DictReader(handle))
            assert len(rows) == 6 and all("/new/" in row["path"] for row in rows)
        sorted_links = [p for p in into.rglob("*.png") if p.is_symlink()]
        assert len(sorted_links) == 6 and not (into / OUTPUT_MARKER).exists()
        for link in sorted_links:
            link.unlink()


def test_cluster_folders_sorted_among_the_inputs_are_left_out_of_a_plain_walk(
    tmp_path, trained_onnx, digits_dataset
):
    photos = tmp_path / "d"
    digits_folder(photos, digits_dataset.images[:6])
    model = ["--model", str(trained_onnx[2])]
    assert runner.invoke(app, ["predict", str(photos), *model, "--sort-into", str(photos)]).exit_code == 0
    made = [folder for folder in photos.iterdir() if folder.is_dir()]
    assert made and all((folder / OUTPUT_MARKER).is_file() for folder in made)
    result = runner.invoke(app, ["predict", str(photos), *model, "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "p.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 6  # not the links as well
    assert "left out the gat predict output in" in result.stderr
    named = [str(path) for path in made[0].iterdir() if path.suffix == ".png"]  # its links, named
    result = runner.invoke(app, ["predict", *named, *model, "--sort-into", str(photos)])
    assert result.exit_code == 0 and f"{len(named)} images in" in result.stderr, result.output


def test_sorting_among_the_inputs_through_a_link_and_into_a_users_folder(
    tmp_path, trained_onnx, digits_dataset
):
    photos, link = tmp_path / "d", tmp_path / "link"
    digits_folder(photos, digits_dataset.images[:6])
    link.symlink_to(photos)
    model = ["--model", str(trained_onnx[2])]
    for _ in range(2):  # the inputs named through a link: the second run still skips the links
        args = ["predict", str(link), *model, "--out", str(tmp_path / "p.csv"), "--sort-into", str(photos)]
        assert runner.invoke(app, args).exit_code == 0
        with open(tmp_path / "p.csv", newline="") as handle:
            assert len(list(csv.DictReader(handle))) == 6
    name = read_contract(trained_onnx[2]).cluster_names[3]
    shutil.rmtree(photos / name, ignore_errors=True)
    digits_folder(photos / name, digits_dataset.images[6:8])  # the user's own folder of that name
    before = sorted(photos.rglob("*"))
    result = runner.invoke(app, ["predict", str(photos), *model, "--sort-into", str(photos)])
    assert result.exit_code == 2 and f"{photos / name} would take links" in result.stderr, result.output
    assert sorted(photos.rglob("*")) == before  # refused before anything was written


def test_a_file_where_a_cluster_folder_goes_or_one_path_for_two_outputs_is_named_before_any_work(
    tmp_path, trained_onnx, digits_dataset
):
    digits_folder(tmp_path / "d", digits_dataset.images[:3])
    name = read_contract(trained_onnx[2]).cluster_names[2]
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / name).write_text("mine")
    model = ["--model", str(trained_onnx[2])]
    args = [
        "predict",
        str(tmp_path / "d"),
        *model,
        "--sort-into",
        str(tmp_path / "s"),
        "--out",
        str(tmp_path / "t.csv"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and f"{tmp_path / 's' / name} is a file, not a folder" in result.stderr
    assert (tmp_path / "s" / name).read_text() == "mine" and not (tmp_path / "t.csv").exists()
    assert "images in" not in result.stderr
    same = str(tmp_path / "g.csv")
    result = runner.invoke(app, ["predict", str(tmp_path / "d"), *model, "--out", same, "--gallery", same])
    assert result.exit_code == 2 and f"--out {same} is --gallery too" in result.stderr
    assert not (tmp_path / "g.csv").exists()


def test_a_cluster_folder_that_links_to_the_inputs_is_refused_before_any_work(
    tmp_path, trained_onnx, digits_dataset
):
    photos, sorted_dir = tmp_path / "d", tmp_path / "sorted"
    digits_folder(photos, digits_dataset.images[:6])
    name = read_contract(trained_onnx[2]).cluster_names[3]
    sorted_dir.mkdir()
    (sorted_dir / name).symlink_to(photos)  # links sorted there would land among the inputs
    before = sorted(photos.rglob("*"))
    args = ["predict", str(photos), "--model", str(trained_onnx[2]), "--sort-into", str(sorted_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"{sorted_dir / name} under --sort-into {sorted_dir} lead to the inputs" in result.stderr
    assert sorted(photos.rglob("*")) == before


@pytest.mark.parametrize("flag", ["--gallery", "--attention-dir"])
def test_a_gallery_or_overlay_folder_that_holds_the_inputs_is_refused_before_any_work(
    tmp_path, trained_onnx, digits_dataset, flag
):
    photos = tmp_path / "d"
    digits_folder(photos / "new", digits_dataset.images[:2])
    for folder in (photos, photos / "new"):
        args = ["predict", str(photos / "new"), "--model", str(trained_onnx[2]), flag, str(folder)]
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and f"{flag} {folder} is an input folder or holds one" in result.stderr
    assert sorted(p.name for p in photos.rglob("*")) == ["0000.png", "0001.png", "new"]


@pytest.mark.parametrize("flag", ["--gallery", "--attention-dir", "--sort-into"])
def test_an_output_folder_inside_the_inputs_that_holds_photos_is_refused_before_any_work(
    tmp_path, trained_onnx, digits_dataset, flag
):
    # photos/sub holds photos: as an output folder its files are not inputs, so they went
    # unclustered without a word, and its new pictures were clustered with them by the next run.
    photos = tmp_path / "d"
    digits_folder(photos, digits_dataset.images[:2])
    digits_folder(photos / "sub", digits_dataset.images[2:4])
    before = sorted(photos.rglob("*"))
    args = ["predict", str(photos), "--model", str(trained_onnx[2]), flag, str(photos / "sub")]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {photos / 'sub'}: inside the inputs and already holding images")
    assert sorted(photos.rglob("*")) == before and not (tmp_path / "p.csv").exists()
    # Empty, or made by gat predict (marked), it takes the run's pictures, again and again.
    args[-1] = str(photos / "new")
    for _ in range(2):
        assert runner.invoke(app, args).exit_code == 0
    (photos / "notes").mkdir()  # no image of the user's to leave out
    (photos / "notes" / "notes.txt").write_text("not a picture")
    args[-1] = str(photos / "notes")
    assert runner.invoke(app, args).exit_code == 0


def test_a_sort_into_folder_that_already_held_files_is_not_marked_as_output(
    tmp_path, trained_onnx, digits_dataset
):
    photos, album = tmp_path / "d", tmp_path / "album"
    digits_folder(photos, digits_dataset.images[:4])
    digits_folder(album, digits_dataset.images[4:6])  # the user's own pictures
    args = ["predict", str(photos), "--model", str(trained_onnx[2]), "--sort-into", str(album)]
    assert runner.invoke(app, args).exit_code == 0
    assert not (album / OUTPUT_MARKER).exists()  # walks above it still read the user's pictures
    # Nested outputs: making out/gallery first must not make `out` look like the user's folder.
    args[-1:] = [str(tmp_path / "out"), "--gallery", str(tmp_path / "out" / "gallery")]
    assert runner.invoke(app, args).exit_code == 0
    assert (tmp_path / "out" / OUTPUT_MARKER).is_file()
    assert (tmp_path / "out" / "gallery" / OUTPUT_MARKER).is_file()


def test_copy_needs_sort_into(tmp_path, trained_onnx):
    result = runner.invoke(app, ["predict", str(tmp_path), "--model", str(trained_onnx[2]), "--copy"])
    assert result.exit_code == 2 and "--copy applies to --sort-into" in result.stderr


# The commands that talk to the tracking server at MLFLOW_TRACKING_URI.
SERVER_COMMANDS = [
    ["promote", "1"],
    ["predict", ".", "--model", "models:/gatcluster@champion"],
    ["info", "models:/gatcluster@champion"],
    ["user", "add", "al"],
]


@pytest.mark.parametrize("args", SERVER_COMMANDS)
def test_a_tracking_server_that_is_down_is_one_line_not_minutes_of_retries(args):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "x"}
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 1 and f"the tracking server at {uri} does not answer" in result.stderr
    assert "Traceback" not in result.output and "registry" not in result.stderr  # not blamed on the registry


@pytest.mark.parametrize("args", SERVER_COMMANDS)
def test_a_credentials_file_mlflow_cannot_read_is_one_line(args, mlflow_credentials_file):
    mlflow_credentials_file("admin", "p%ss")  # configparser would interpolate the %
    with socket.socket() as server:  # a server that takes connections: the file is read first
        server.bind(("127.0.0.1", 0))
        server.listen()
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        env = {
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": "x",
        }
        result = runner.invoke(app, args, env=env)
    assert result.exit_code == 1, result.output
    said = "~/.mlflow/credentials cannot be read (a % in mlflow_tracking_password of [mlflow] must be"
    assert said in result.stderr and "p%ss" not in result.stderr and "%ss" not in result.stderr
    assert "a % in a value is written %%" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("name", ["c:d", "", " ", "tab\there"])
def test_user_add_refuses_a_name_basic_authentication_cannot_carry(name):
    result = runner.invoke(app, ["user", "add", name], env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"})
    assert result.exit_code == 2 and "give a printable name without ':'" in result.stderr


def test_a_password_piped_from_a_windows_file_loses_its_line_ending(monkeypatch):
    import io

    from gatcluster.cli.servers import read_new_password

    monkeypatch.setattr("sys.stdin", io.StringIO("crlf-password-1234\r\n"))
    assert read_new_password("password", True) == "crlf-password-1234"


def test_only_a_first_start_asks_for_the_admin_password(tmp_path, monkeypatch):
    from gatcluster.cli.servers import prepare_authentication

    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "a-long-admin-password")
    config, key = prepare_authentication(tmp_path / ".mlflow-auth")
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD")  # and no terminal to ask at: not needed now
    assert prepare_authentication(tmp_path / ".mlflow-auth") == (config, key)


def test_a_damaged_user_store_stops_gat_server_in_one_line(tmp_path, monkeypatch, unused_port):
    (tmp_path / ".mlflow-auth").write_text("a file where the folder should be")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "a-long-admin-password")
    result = runner.invoke(app, ["server", "--auth", "--port", str(unused_port())])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"error: the user store in {tmp_path / '.mlflow-auth'} cannot be used (" in result.stderr


def test_user_add_takes_the_admin_from_the_credentials_file(mlflow_credentials_file, unused_port):
    uri = f"http://127.0.0.1:{unused_port()}"
    result = runner.invoke(app, ["user", "add", "al"], env={"MLFLOW_TRACKING_URI": uri})
    assert result.exit_code == 2 and "~/.mlflow/credentials" in result.stderr  # no admin at all
    mlflow_credentials_file("admin", "x")
    result = runner.invoke(app, ["user", "add", "al"], env={"MLFLOW_TRACKING_URI": uri})
    assert result.exit_code == 1 and f"the tracking server at {uri} does not answer" in result.stderr


@pytest.mark.parametrize("args", [["promote", "3"], ["info", "models:/gatcluster/1"]])
def test_a_tracking_uri_mlflow_cannot_use_is_said_as_gat_check_says_it(monkeypatch, tmp_path, args):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "junk")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.stderr.startswith("error: MLFLOW_TRACKING_URI junk is a file store (mlruns/)")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_server_that_is_not_mlflows_is_one_line_not_a_traceback(monkeypatch, tmp_path, answering_server):
    url, _ = answering_server(200, b"{}")  # 200 and an empty object, whatever was asked
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    for args in (["promote", "3"], ["info", "models:/gatcluster/1"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "gave an answer MLflow cannot read" in result.stderr, result.stderr


def test_a_missing_module_is_blamed_on_the_train_extra_only_where_that_is_absent(monkeypatch):
    import importlib.util

    from gatcluster.cli.app import missing_module_advice

    # Here the train extra is installed: a driver MLflow loads (mysql://) is no extra's to install.
    assert "no gatcluster extra installs" in missing_module_advice("MySQLdb")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "torch" else real(name))
    assert "pip install 'gatcluster[train]'" in missing_module_advice("torch")


def test_gat_ui_says_a_store_uri_mlflow_cannot_use_before_its_banner(tmp_path, monkeypatch, unused_port):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["ui", "--port", str(unused_port()), "--backend-store-uri", "junk"])
    assert result.exit_code == 2 and "MLflow UI on" not in result.stderr
    assert result.stderr.startswith("error: --backend-store-uri junk is a file store (mlruns/)")


def test_gat_ui_given_a_tracking_server_points_to_its_own_ui(tmp_path, monkeypatch, unused_port):
    """`mlflow ui` serves stores, not servers: it used to fail after the banner."""
    monkeypatch.chdir(tmp_path)
    port = str(unused_port())
    result = runner.invoke(app, ["ui", "--port", port, "--backend-store-uri", "http://u:s3cret@team:5000"])
    assert result.exit_code == 2 and "MLflow UI on" not in result.stderr and "s3cret" not in result.stderr
    assert result.stderr.startswith("error: --backend-store-uri http://u:***@team:5000 is a tracking server")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.org")
    result = runner.invoke(app, ["ui", "--port", port])
    assert result.exit_code == 2 and "MLflow UI on" not in result.stderr
    assert "MLFLOW_TRACKING_URI https://mlflow.example.org is a tracking server" in result.stderr
    # A server URL with no host keeps its own, more precise, error.
    result = runner.invoke(app, ["ui", "--port", port, "--backend-store-uri", "http://"])
    assert result.exit_code == 2 and "names no host" in result.stderr

"""The base install serves: `gat predict` and `gat info` run where torch and the training stack are absent.

A fresh virtual environment (no system site-packages) gets exactly the distributions the base
install pulls in: the closure of pyproject.toml's `dependencies`, linked from this environment (no
download), plus the source tree. There torch, scikit-learn and MLflow cannot be imported, and the
serving commands still cluster a folder, write a gallery, attention overlays and a sorted copy.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TRAINING_ONLY = ("torch", "torchvision", "sklearn", "scipy", "pandas", "mlflow", "dvc", "onnx", "yaml")
GAT = "from gatcluster.cli.app import run; run()"


def base_distributions() -> set[str]:
    """Names of the distributions the base install brings: its requirements and theirs, recursively."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    todo = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    found: set[str] = set()
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = metadata.distribution(req.name).metadata["Name"].lower()
        if name not in found:
            found.add(name)
            todo.extend(Requirement(r) for r in metadata.distribution(name).requires or [])
    return found


def link_distributions(names: set[str], site: Path) -> None:
    """Symlink every top-level file or folder of these installed distributions into `site`."""
    site.mkdir()
    for name in names:
        dist = metadata.distribution(name)
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source = Path(dist.locate_file(top))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)


@pytest.fixture(scope="module")
def base_python(tmp_path_factory) -> Path:
    """The interpreter of a fresh venv that holds only the base install's distributions."""
    work = tmp_path_factory.mktemp("base-install")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert purelib != sysconfig.get_paths()["purelib"]
    link_distributions(base_distributions(), work / "site")
    (Path(purelib) / "gatcluster-base.pth").write_text(f"{work / 'site'}\n{ROOT}\n")
    return python


def run_in(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([python, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_base_install_has_no_training_stack(base_python, tmp_path):
    for module in TRAINING_ONLY:
        result = run_in(base_python, "-c", f"import {module}", cwd=tmp_path)
        assert result.returncode != 0, f"{module} is importable in the base install"
    assert run_in(base_python, "-c", "import onnxruntime, PIL, numpy, typer", cwd=tmp_path).returncode == 0


def write_digits(folder: Path, digits_dataset, count: int) -> None:
    """`count` real digits (cycling through the 1,797) as 32-px PNG files in `folder`."""
    folder.mkdir()
    for i in range(count):
        pixels = digits_dataset.images[i % len(digits_dataset.images), ..., 0].astype(np.float32) * 255 / 16
        Image.fromarray(pixels.astype(np.uint8)).resize((32, 32)).save(folder / f"digit-{i:04d}.png")


def test_predict_and_info_run_without_torch(base_python, trained_onnx, digits_dataset, tmp_path):
    _, _, model = trained_onnx
    info = run_in(base_python, "-c", GAT, "info", str(model), cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "num_clusters: 10" in info.stdout

    write_digits(tmp_path / "many", digits_dataset, 1000)
    args = ["predict", "many", "--model", str(model), "--out", "clusters.csv"]
    result = run_in(base_python, "-c", GAT, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "clusters.csv").read_text().splitlines()) == 1 + 1000


def test_gallery_attention_and_sorting_run_without_torch(base_python, trained_onnx, digits_dataset, tmp_path):
    _, _, model = trained_onnx
    write_digits(tmp_path / "photos", digits_dataset, 24)
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    args = ["predict", "photos", "--model", str(model), "--out", "clusters.jsonl"]
    args += ["--gallery", "gallery", "--attention-dir", "att", "--sort-into", "sorted", "--copy"]
    result = run_in(base_python, "-c", GAT, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "clusters.jsonl").read_text().splitlines()) == 24
    assert (tmp_path / "gallery" / "gallery.html").is_file()
    assert len(list((tmp_path / "att").glob("*.png"))) == 24
    assert len(list((tmp_path / "sorted").rglob("*.png"))) == 24
    again = run_in(base_python, "-c", GAT, *args, cwd=tmp_path)  # the same copies are already there
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "sorted").rglob("*.png"))) == 24


def test_a_training_command_says_what_to_install(base_python, tmp_path):
    result = run_in(base_python, "-c", GAT, "check", cwd=tmp_path)
    assert result.returncode != 0
    assert "pip install 'gatcluster[train]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_parquet_output_says_what_to_install(base_python, trained_onnx, tmp_path):
    _, _, model = trained_onnx
    result = run_in(
        base_python, "-c", GAT, "predict", ".", "--model", str(model), "--out", "x.parquet", cwd=tmp_path
    )
    assert result.returncode != 0
    assert "gatcluster[parquet]" in result.stderr and "Traceback" not in result.stderr


def test_tab_completion_lists_formats_and_no_presets_without_an_error(base_python, tmp_path):
    def complete(*words: str) -> subprocess.CompletedProcess:
        # bash's protocol: the words typed (the last one empty after a space) and the cursor's word
        env = {"_GAT_COMPLETE": "complete_bash", "COMP_WORDS": " ".join(("gat", *words))}
        env["COMP_CWORD"] = str(len(words))
        named_gat = f"import sys; sys.argv[0] = 'gat'; {GAT}"  # the completion variable follows the name
        return subprocess.run(
            [base_python, "-c", named_gat], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env
        )

    formats = complete("predict", "--format", "")
    assert formats.returncode == 0 and formats.stdout.split() == ["csv", "jsonl", "parquet"]
    presets = complete("preset", "")  # `gat preset` needs the train extra: nothing to offer
    assert presets.returncode == 0 and presets.stdout.split() == [] and presets.stderr == ""

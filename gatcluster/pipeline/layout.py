"""Where a project keeps its files: the one owner of every pipeline path.

Stage scripts and the CLI build a `ProjectLayout` for their project root; library functions receive
it (or single paths from it). `dvc.yaml` names the same files as stage outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gatcluster.data.store import PROJECT_DATASET_DIR


@dataclass(frozen=True)
class ProjectLayout:
    """Every path the pipeline reads or writes, under one project root."""

    root: Path

    @property
    def params_file(self) -> Path:
        return self.root / "params.yaml"

    @property
    def dvc_lock(self) -> Path:
        return self.root / "dvc.lock"

    @property
    def dataset_dir(self) -> Path:
        return self.root / PROJECT_DATASET_DIR

    @property
    def raw_cache(self) -> Path:
        """Downloaded archives (git-ignored, outside DVC)."""
        return self.root / "data" / "raw"

    @property
    def check_file(self) -> Path:
        return self.root / "reports" / "check.json"

    @property
    def model_file(self) -> Path:
        return self.root / "models" / "model.pt"

    @property
    def model_run_file(self) -> Path:
        """train -> evaluate: the MLflow run of the model."""
        return self.root / "models" / "run.json"

    @property
    def onnx_file(self) -> Path:
        return self.root / "models" / "gatcluster.onnx"

    @property
    def checkpoint(self) -> Path:
        """Outside DVC's outputs, so `dvc repro` cannot delete it before a resume."""
        return self.root / "checkpoints" / "train" / "last.pt"

    @property
    def checkpoint_run_file(self) -> Path:
        """The MLflow run a resumed training continues."""
        return self.root / "checkpoints" / "train" / "run.json"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def train_reports_dir(self) -> Path:
        return self.root / "reports" / "train"

    @property
    def report_run_file(self) -> Path:
        """evaluate -> export: the run actually evaluated."""
        return self.root / "reports" / "run.json"

    @property
    def clusters_file(self) -> Path:
        """evaluate -> export: name and size of each cluster."""
        return self.root / "reports" / "clusters.json"

    @property
    def artifact_root(self) -> Path:
        """Where the project's MLflow experiments keep their artifacts."""
        return self.root / "mlartifacts"

    @property
    def auth_dir(self) -> Path:
        """Where `gat server` keeps its users and secret key when it authenticates (private)."""
        return self.root / ".mlflow-auth"

    @property
    def rewritten_by_runs(self) -> tuple[Path, ...]:
        """Tracked files a pipeline run rewrites as it goes (DVC's lock file, the reports kept in
        git): changes there do not make the code a run used differ from its commit."""
        return self.dvc_lock, self.reports_dir

    def relative(self, path: Path) -> str:
        """`path` relative to the project root when inside it, for short messages."""
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    @property
    def gallery_file(self) -> Path:
        """The clusters as one self-contained page (evaluate)."""
        return self.root / "reports" / "gallery.html"

    @property
    def gallery_dir(self) -> Path:
        """One PNG grid per cluster (evaluate)."""
        return self.root / "reports" / "gallery"

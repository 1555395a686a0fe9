"""Layers only look down (docs/architecture.md): no module imports a layer above its own, no circles.

Every `import gatcluster...` counts, at module level or inside a function: a deferred import is
still a dependency. Imports under `if TYPE_CHECKING:` are annotations only and do not count.
"""

from __future__ import annotations

import ast
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gatcluster"
# The one reading of "imports that run" (TYPE_CHECKING blocks left out), shared with dvc.yaml's deps.
runtime_nodes = runpy.run_path(str(ROOT / "tools" / "stage_deps.py"))["runtime_nodes"]
# Lowest first. The package's top-level modules (atomic, exit_codes, telemetry) are below them all.
LAYERS = ("config", "data", "model", "evaluation", "training", "serving", "tracking", "pipeline", "cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """The gatcluster modules `path` imports (`from gatcluster.x import y` counts x.y when it is one)."""
    found = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gatcluster"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gatcluster"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m in MODULES}


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) + 1 if len(parts) > 1 and parts[1] in LAYERS else 0


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {m: imported_modules(p) - {m} for m, p in MODULES.items()}


def test_every_subpackage_has_a_layer():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(LAYERS)


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{m} -> {dep}" for m, deps in sorted(GRAPH.items()) for dep in sorted(deps) if layer(dep) > layer(m)
    ]
    assert upward == []


def test_no_import_circles():
    def reaches(start: str, target: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == target:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(GRAPH[node])
        return False

    circles = [
        f"{m} <-> {dep}" for m, deps in sorted(GRAPH.items()) for dep in sorted(deps) if reaches(dep, m)
    ]
    assert circles == []

"""The code each DVC stage runs: the import closure of its stage script, as dvc.yaml must list it.

A stage depends on the modules it imports (at module level or inside a function, and the package
`__init__.py` files on the way), not on the whole `gatcluster/` folder: an edit to the CLI, the docs
or the tests then re-runs no stage. dvc.yaml's code deps (paths under stages/ and gatcluster/)
must equal this closure; other deps (data, earlier outputs) are left as they are.

    .venv/bin/python tools/stage_deps.py            # show each stage's code deps; exit 1 if dvc.yaml differs
    .venv/bin/python tools/stage_deps.py --write    # rewrite dvc.yaml's code deps (comments kept)
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("stages", "gatcluster")  # first path components


def module_file(name: str, root: Path) -> Path | None:
    """The file of module `name` under `root` (stages/ scripts import `_common` by bare name)."""
    parts = name.split(".")
    for base in (root, root / "stages"):
        for candidate in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts) / "__init__.py"):
            if candidate.is_file() and (parts[0] == "gatcluster" or base.name == "stages"):
                return candidate
    return None


def imports_of(path: Path) -> set[str]:
    """Module names `path` imports, with `from a import b` also as `a.b` (b may be a module).

    Imports under `if TYPE_CHECKING:` are annotations only: they do not run.
    """
    names = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree` except those inside `if TYPE_CHECKING:` blocks."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def package_inits(name: str, root: Path) -> set[Path]:
    """The `__init__.py` of every package on the way to module `name` (importing runs them)."""
    parts = name.split(".")
    inits = {root.joinpath(*parts[:i]) / "__init__.py" for i in range(1, len(parts))}
    return {p for p in inits if p.is_file()}


def code_closure(script: Path, root: Path = ROOT) -> list[str]:
    """Every project file `script` runs, relative to `root`, sorted: itself and what it imports."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imports_of(path):
            found = module_file(name, root)
            if found is not None:
                todo.append(found)
                todo.extend(package_inits(name, root))
    return sorted(str(p.relative_to(root)) for p in seen)


def is_code(dep: str) -> bool:
    """A dep on project code: a file or folder under stages/ or gatcluster/ (or the folders themselves)."""
    return dep.split("/")[0] in CODE_DIRS


def stage_script(cmd: str) -> str:
    """`python stages/x.py` -> `stages/x.py`."""
    return next(word for word in cmd.split() if word.endswith(".py"))


def expected_deps(stage: dict, root: Path = ROOT) -> list[str]:
    """The stage's deps with its code deps replaced by the closure of its script."""
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
    code = code_closure(root / stage_script(stage["cmd"]), root)
    return code + [d for d in deps if not is_code(d)]


def differences(dvc_yaml: dict, root: Path = ROOT) -> dict[str, tuple[list[str], list[str]]]:
    """stage -> (missing code deps, extra code deps) for every stage whose code deps are wrong."""
    found = {}
    for name, stage in dvc_yaml["stages"].items():
        listed = {d for d in stage.get("deps", []) if isinstance(d, str) and is_code(d)}
        want = set(code_closure(root / stage_script(stage["cmd"]), root))
        if listed != want:
            found[name] = (sorted(want - listed), sorted(listed - want))
    return found


def main() -> int:
    from ruamel.yaml import YAML

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    args = parser.parse_args()
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)  # the layout dvc.yaml is written in
    path = ROOT / "dvc.yaml"
    doc = yaml.load(path.read_text())
    wrong = differences(doc)
    if args.write and wrong:
        for name in wrong:
            doc["stages"][name]["deps"] = expected_deps(doc["stages"][name])
        yaml.dump(doc, path)
        print(f"rewrote the code deps of {', '.join(wrong)} in dvc.yaml")
        return 0
    for name, (missing, extra) in wrong.items():
        print(f"{name}: dvc.yaml lacks {missing or 'nothing'}; lists but does not run {extra or 'nothing'}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())

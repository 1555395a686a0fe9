"""Shell completion: the value lists, and a real bash completing `gat` after
`gat --install-completion` into a temporary home."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gatcluster.cli.completion import complete_device, complete_format, complete_preset_name
from gatcluster.config.params_edit import preset_names
from gatcluster.serving.outputs import FORMATS

GAT = Path(sys.executable).parent / "gat"


def test_each_list_offers_what_starts_with_the_typed_text():
    assert complete_preset_name("") == preset_names()
    assert complete_preset_name("fa") == ["faithful", "fashion-mnist"]
    assert complete_format("") == list(FORMATS) and complete_format("j") == ["jsonl"]
    assert complete_device("c") == ["cpu", "cuda"] and complete_device("x") == []


def bash_completes(home: Path, words: list[str]) -> list[str]:
    """What bash offers for the last of `words` (an empty one: the cursor after a space) once it has
    sourced the script that `gat --install-completion` left in `home`."""
    script = home / ".bash_completions" / "gat.sh"
    line = f"COMP_WORDS=({' '.join(map(shlex.quote, words))}); COMP_CWORD={len(words) - 1}"
    done = subprocess.run(
        [
            "bash",
            "--norc",
            "-c",
            f'source "{script}"; {line}; _gat_completion gat; printf "%s\\n" "${{COMPREPLY[@]}}"',
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(home), "PATH": f"{GAT.parent}{os.pathsep}{os.environ['PATH']}"},
    )
    assert done.returncode == 0, done.stderr
    return [word for word in done.stdout.splitlines() if word]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_install_completion_sets_up_bash_to_complete_commands_presets_and_choices(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "SHELL": "/bin/bash"}
    # Run from bash, as a user would: Typer asks the process tree which shell to set up.
    done = subprocess.run(
        ["bash", "--norc", "-c", f'"{GAT}" --install-completion; echo "exit $?"'],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.stdout.rstrip().endswith("exit 0"), done.stdout + done.stderr
    assert "bash completion installed" in done.stdout
    assert ".bash_completions/gat.sh" in (home / ".bashrc").read_text()

    assert {"predict", "preset", "promote"} <= set(bash_completes(home, ["gat", "pr"]))
    assert bash_completes(home, ["gat", "preset", "st"]) == ["stl10"]
    assert bash_completes(home, ["gat", "predict", "photos", "--format", ""]) == list(FORMATS)
    assert bash_completes(home, ["gat", "predict", "--device", "cu"]) == ["cuda"]

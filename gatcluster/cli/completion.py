"""Shell completion of `gat`'s fixed-choice values (`gat --install-completion` sets it up).

Typer completes command names, options and paths by itself; these functions add the values that
only the code knows: preset names, `gat predict --format` and `--device`. A completion runs on
every Tab press, so each imports only what it lists.
"""

from __future__ import annotations

from collections.abc import Iterable

PREDICT_DEVICES = ("auto", "cpu", "cuda")


def starting_with(choices: Iterable[str], incomplete: str) -> list[str]:
    """The `choices` that start with what is typed so far, in their order."""
    return [choice for choice in choices if choice.startswith(incomplete)]


def complete_preset_name(incomplete: str) -> list[str]:
    """`gat preset NAME`: the shipped presets; none on a base install, where `gat preset` cannot run."""
    try:
        from gatcluster.config.params_edit import preset_names
    except ModuleNotFoundError:  # the train extra's YAML packages: an error line would land in the prompt
        return []
    return starting_with(preset_names(), incomplete)


def complete_format(incomplete: str) -> list[str]:
    """`gat predict --format`: the table formats."""
    from gatcluster.serving.outputs import FORMATS

    return starting_with(FORMATS, incomplete)


def complete_device(incomplete: str) -> list[str]:
    """`gat predict --device`."""
    return starting_with(PREDICT_DEVICES, incomplete)

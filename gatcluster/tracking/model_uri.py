"""Registry model URIs (`models:/NAME/VERSION`, `models:/NAME@ALIAS`): parsed without MLflow.

`gat predict --model` decides file or registry here, so a local file is served without importing
MLflow; `registry.py` resolves a parsed reference against the tracking server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The alias is the text after the last '@' (a name may hold one: `models:/team@lab/2`), of the
# characters MLflow allows in one (letters of any script, digits, '_', '-'); versions are ASCII
# digits, as many as a registry's 64-bit numbers can hold.
ALIAS_CHARACTERS = r"[\w\-]+"
URI_PATTERN = re.compile(
    rf"^models:/(?P<name>[^/:?]+?)(?:/(?P<version>[0-9]{{1,18}})|@(?P<alias>{ALIAS_CHARACTERS}))/?$"
)
MAX_ALIAS_LENGTH = 255  # MLflow's limit


class RegistryError(RuntimeError):
    """A registry lookup, promotion or download failed; the message says what to do."""


@dataclass(frozen=True)
class ModelRef:
    """A parsed `models:/` URI: a registered model name and either a version or an alias."""

    name: str
    version: int | None
    alias: str | None

    def __str__(self) -> str:
        return f"models:/{self.name}" + (f"/{self.version}" if self.version is not None else f"@{self.alias}")


def alias_problem(alias: str) -> str | None:
    """Why MLflow would refuse `alias` as a new alias (None when it takes it): checked before the
    store is opened, so the message names the option rather than MLflow's field."""
    if not re.fullmatch(ALIAS_CHARACTERS, alias):
        return "use letters, digits, '_' and '-' (e.g. champion)"
    if len(alias) > MAX_ALIAS_LENGTH:
        return f"at most {MAX_ALIAS_LENGTH} characters"
    if alias.lower() == "latest" or re.fullmatch(r"[vV][0-9]+", alias):
        return "'latest' and v<number> are reserved by MLflow (models:/NAME/3 names version 3)"
    return None


def is_registry_uri(text: str) -> bool:
    """Whether a --model value names a registry model rather than a file."""
    return text.startswith("models:/")


def parse_model_uri(text: str) -> ModelRef:
    """`models:/NAME/VERSION` or `models:/NAME@ALIAS`; RegistryError for anything else."""
    match = URI_PATTERN.match(text)
    if match is None:
        raise RegistryError(
            f"{text!r} is not a registry model URI: use models:/NAME/VERSION or models:/NAME@ALIAS "
            "(e.g. models:/gatcluster@champion)"
        )
    version = match["version"]
    return ModelRef(match["name"], int(version) if version else None, match["alias"])

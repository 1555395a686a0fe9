"""Registry model URIs (`models:/NAME/VERSION`, `models:/NAME@ALIAS`): parsed without MLflow.

`gat predict --model` decides file or registry here, so a local file is served without importing
MLflow; `registry.py` resolves a parsed reference against the tracking server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The alias is the text after the last '@' (a name may hold one: `models:/team@lab/2`); versions are
# ASCII digits, as many as a registry's 64-bit numbers can hold.
URI_PATTERN = re.compile(
    r"^models:/(?P<name>[^/:?]+?)(?:/(?P<version>[0-9]{1,18})|@(?P<alias>[A-Za-z0-9_\-]+))/?$"
)


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

"""Files that ship inside the package: the built-in search spaces and the example studies.

In the repository they live in ``searchspaces/`` and ``studies/`` at the top; ``headsearch/searchspaces``
and ``headsearch/studies`` link there, so a wheel carries them and any install finds them here."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

KINDS = ("searchspaces", "studies")


def packaged(kind: str) -> Path:
    """The folder of ``kind`` (searchspaces or studies) inside the installed package."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of packaged file {kind!r}; one of {KINDS}")
    return Path(str(files("headsearch") / kind))


def packaged_names(kind: str) -> list[str]:
    """The names (without .yaml) of the packaged files of ``kind``."""
    folder = packaged(kind)
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []

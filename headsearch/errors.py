"""One exception hierarchy. The CLI turns any ``HeadsearchError`` into a one-line message and exit code 2."""

from __future__ import annotations


class HeadsearchError(Exception):
    """Base class of every error headsearch raises on purpose."""


class HeadConfigError(HeadsearchError, ValueError):
    """A HeadConfig is malformed or does not fit the model it is applied to."""


class DataError(HeadsearchError):
    """A dataset file is missing or a row cannot be parsed (the message names file and line)."""


class ModelError(HeadsearchError):
    """A model folder or checkpoint cannot be loaded, or a model option is invalid."""


class WriteError(HeadsearchError):
    """A file or folder could not be written (a full disk, a quota, no permission); nothing half-written remains."""


class ExportError(HeadsearchError):
    """An export folder is incomplete, corrupted or inconsistent."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: a run ends the same way (trial failed and rerun later, MLflow
    runs KILLED)."""

    def __str__(self) -> str:
        return "SIGTERM"


def yaml_problem(exc: Exception) -> str:
    """PyYAML's multi-line error as one line: the problem and where it is."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem

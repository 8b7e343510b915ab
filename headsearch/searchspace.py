"""Search spaces: ``searchspaces/STRATEGY.yaml`` loaded and validated, then sampled through an Optuna trial.

A file lists ``params``; each has a ``type`` (float, int, categorical, bool), ``low``/``high`` (which
may name ``num_heads`` or ``num_layers`` of the study's model), ``log``, ``step``, ``choices`` and a
``default``. ``per_layer: true`` makes one parameter per layer, named ``NAME_0``, ``NAME_1``, ...
A study may override any field of any parameter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from headsearch.errors import HeadsearchError, yaml_problem
from headsearch.resources import packaged

_SYMBOLS = ("num_heads", "num_layers")

Bound = float | int | Literal["num_heads", "num_layers"]


class Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["float", "int", "categorical", "bool"]
    low: Bound | None = None
    high: Bound | None = None
    log: bool = False
    step: float | int | None = None
    choices: list[Any] | None = None
    default: Any = None
    per_layer: bool = False
    help: str = ""

    @model_validator(mode="after")
    def _check(self) -> Param:
        if self.type in ("float", "int") and (self.low is None or self.high is None):
            raise ValueError(f"a {self.type} parameter needs low and high")
        if self.type == "categorical" and not self.choices:
            raise ValueError("a categorical parameter needs a non-empty choices list")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        numeric = [b for b in (self.low, self.high) if isinstance(b, int | float)]
        if len(numeric) == 2 and self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self

    def bounds(self, num_layers: int, num_heads: int) -> tuple[float, float]:
        values = {"num_heads": num_heads, "num_layers": num_layers}
        low, high = (values.get(b, b) if isinstance(b, str) else b for b in (self.low, self.high))
        if low > high:
            raise HeadsearchError(f"Search-space bounds low={self.low} > high={self.high}.")
        return low, high


class SearchSpace(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    params: dict[str, Param] = {}

    def names(self, num_layers: int) -> list[str]:
        return [n for name, p in self.params.items()
                for n in ([f"{name}_{i}" for i in range(num_layers)] if p.per_layer else [name])]

    def defaults(self) -> dict[str, Any]:
        """Each parameter's ``default`` (per-layer parameters have none): what a strategy uses for a parameter
        it is not given, so the file is the one source of defaults."""
        return {name: p.default for name, p in self.params.items() if p.default is not None and not p.per_layer}

    def suggest(self, trial: Any, num_layers: int, num_heads: int) -> dict[str, Any]:
        """Sample every parameter through an Optuna ``trial`` (or anything with the same suggest_* methods)."""
        out: dict[str, Any] = {}
        for name, p in self.params.items():
            for full in ([f"{name}_{i}" for i in range(num_layers)] if p.per_layer else [name]):
                if p.type == "categorical":
                    out[full] = trial.suggest_categorical(full, p.choices)
                elif p.type == "bool":
                    out[full] = trial.suggest_categorical(full, [False, True])
                else:
                    low, high = p.bounds(num_layers, num_heads)
                    if p.type == "int":
                        out[full] = trial.suggest_int(full, int(low), int(high), log=p.log, step=int(p.step or 1))
                    else:
                        out[full] = trial.suggest_float(full, float(low), float(high), log=p.log, step=p.step)
        return out


def _find(ref: str | Path) -> Path:
    """A search-space file: a path, else ``searchspaces/NAME`` of the working directory (a user's own
    override), else the one that ships with headsearch."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    folders = (Path.cwd() / "searchspaces", packaged("searchspaces"))
    for folder in folders:
        if (folder / path.name).is_file():
            return folder / path.name
    raise HeadsearchError(f"Search space {ref} not found (looked in {[str(d) for d in folders]}).")


def load_space(ref: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> SearchSpace:
    """Read and validate a search-space file, then apply a study's per-parameter overrides."""
    path = _find(ref)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise HeadsearchError(f"{path}: not valid YAML ({yaml_problem(exc)}).") from exc
    params = dict(raw.get("params") or {}) if isinstance(raw, dict) else raw
    for name, change in (overrides or {}).items():
        if name not in params:
            raise HeadsearchError(f"Override of unknown parameter {name!r} for {path.name}; it has {sorted(params)}.")
        params[name] = {**params[name], **change}
    try:
        return SearchSpace(params=params)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise HeadsearchError(f"{path}: {where}: {err['msg']}.") from exc

"""Strategy registry: built-ins by name, third-party strategies from the entry-point group
``headsearch.strategies``. A plug-in that fails to load warns, naming itself, and is skipped."""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points

from headsearch.errors import HeadsearchError
from headsearch.strategies.base import Strategy

ENTRY_POINT_GROUP = "headsearch.strategies"

_BUILTINS = {
    "dense": "headsearch.strategies.dense:DenseStrategy",
    "random": "headsearch.strategies.random_heads:RandomStrategy",
    "importance": "headsearch.strategies.importance:ImportanceStrategy",
    "nas": "headsearch.strategies.nas:NasStrategy",
    "astar": "headsearch.strategies.astar:AStarStrategy",
    "cahp": "headsearch.strategies.cahp:CAHPStrategy",
    "static_gates": "headsearch.strategies.static_gates:StaticGatesStrategy",
    "budgeted_gates": "headsearch.strategies.budgeted_gates:BudgetedGatesStrategy",
    "budgetformer": "headsearch.strategies.budgetformer:BudgetFormerStrategy",
}


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    origin: str  # "built-in" or the distribution that provides the entry point
    cls: type[Strategy]


def _load(target: str) -> type[Strategy]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def available() -> dict[str, StrategyInfo]:
    """Every strategy that loads: built-ins first; a plug-in cannot shadow a built-in name."""
    found = {name: StrategyInfo(name, "built-in", _load(target)) for name, target in _BUILTINS.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        origin = ep.dist.name if ep.dist is not None else ep.value
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Strategy)):
                raise TypeError(f"{ep.value} is not a headsearch Strategy subclass")
            if getattr(cls, "name", None) != ep.name:  # its cache namespace and its trials' labels are its name
                raise TypeError(f"{ep.value} is named {getattr(cls, 'name', None)!r}; the entry point must use the "
                                "same name")
        except Exception as exc:  # a broken plug-in must never break the host
            warnings.warn(f"headsearch strategy plug-in {ep.name!r} from {origin} failed to load: {exc}", stacklevel=2)
            continue
        if ep.name in found:
            warnings.warn(f"headsearch strategy plug-in {ep.name!r} from {origin} ignored: the name is taken by "
                          f"{found[ep.name].origin}", stacklevel=2)
            continue
        found[ep.name] = StrategyInfo(ep.name, origin, cls)
    return found


def get(name: str) -> StrategyInfo:
    strategies = available()
    if name not in strategies:
        raise HeadsearchError(f"Unknown strategy {name!r}; available: {sorted(strategies)} (see `headsearch strategies`).")
    return strategies[name]

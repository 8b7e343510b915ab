"""The drivers by name (``--driver``): ``optuna`` and ``ray`` (the contract: ``headsearch.search.job``)."""

from __future__ import annotations

from headsearch.errors import HeadsearchError
from headsearch.search.job import Driver
from headsearch.search.optuna_driver import OptunaDriver

DRIVERS = ("optuna", "ray")


def driver_for(name: str, *, address: str | None = None, max_concurrent: int | None = None) -> Driver:
    """The driver called ``name``; Ray is imported only when asked for (it is heavy to import)."""
    if name not in DRIVERS:
        raise HeadsearchError(f"--driver {name!r} is not known; use one of {', '.join(DRIVERS)}.")
    if name == "optuna":
        return OptunaDriver()
    from headsearch.search.ray_driver import RayDriver

    return RayDriver(address=address, max_concurrent=max_concurrent)

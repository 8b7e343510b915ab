"""Latency tables kept across studies: a table depends on the model's shape, the hardware profile and the
machine, not on the weights or the study, so a second study of the same model on the same machine reads it.

Kept as JSON in ``HEADSEARCH_CACHE_DIR`` (default: the user cache folder, ``platformdirs``), named by a hash of
what it depends on: model class and shape, profile, torch version, CPU model and count (and the GPU's name
on CUDA). A cache that cannot be read or written is skipped: the table is measured again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import platformdirs
import torch

from headsearch.cost.latency import HardwareProfile

ENV = "HEADSEARCH_CACHE_DIR"


def cache_dir() -> Path:
    return Path(os.environ.get(ENV) or platformdirs.user_cache_dir("headsearch")) / "latency_tables"


def machine() -> dict[str, Any]:
    """What a timing depends on besides the model and profile."""
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    out = {"cpu": cpu, "cpus": os.cpu_count(), "torch": torch.__version__, "machine": platform.machine()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    return out


def key(shape: dict[str, Any], profile: HardwareProfile) -> dict[str, Any]:
    return {"shape": shape, "profile": profile.to_dict(), "machine": machine()}


def _path(k: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(k, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / f"{digest}.json"


def read(k: dict[str, Any]) -> dict[str, Any] | None:
    """The cached table saved under ``k`` (with ``k``'s fields), or None."""
    try:
        saved = json.loads(_path(k).read_text())
    except (OSError, ValueError):
        return None
    return saved if saved.get("key") == json.loads(json.dumps(k)) else None


def write(k: dict[str, Any], table: dict[str, Any]) -> None:
    path = _path(k)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}")
        tmp.write_text(json.dumps({**table, "key": k}, indent=1) + "\n")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only or full cache: the next study measures again

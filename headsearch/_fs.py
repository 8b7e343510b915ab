"""Write a folder all at once: build it beside the target, then rename, so no half-written folder remains.

The temporary folder is named ``.TARGET.PID.xxxx``: one left by a process that was killed (``kill -9``
leaves no chance to clean up) is removed by the next write of the same target.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from headsearch._process import process_alive


def remove_stale(target: Path) -> list[Path]:
    """Remove the temporary folders of ``target`` whose process is gone; returns them."""
    removed = []
    for sibling in target.parent.glob(f".{target.name}.*"):
        pid = sibling.name[len(target.name) + 2:].split(".")[0]
        if sibling.is_dir() and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(sibling, ignore_errors=True)
            removed.append(sibling)
    return removed


@contextmanager
def atomic_folder(target: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``target``, on error it is removed."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; choose another path or allow overwriting.")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)

"""Write a folder all at once: build it beside the target, then rename, so no half-written folder remains.

The temporary folder is named ``.TARGET.PID.xxxx``: one left by a process that was killed (``kill -9``
leaves no chance to clean up) is removed by the next write of the same target. A write that fails (a full
disk, no permission) is one line naming the target and the cause (``WriteError``), and leaves nothing.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from headsearch._process import process_alive
from headsearch.errors import WriteError


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
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        cause = write_failure(exc)
        if cause is not None:
            raise WriteError(f"cannot write {target} ({cause}); free space on that disk or write elsewhere.") from exc
        raise
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def write_failure(exc: BaseException) -> str | None:
    """What failed, when ``exc`` is a failed write: an OSError (a full disk, a quota, no permission), or
    safetensors' own error while serializing (it wraps the OS error in its message)."""
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror or str(exc)
    if type(exc).__name__ == "SafetensorError" and "serializ" in str(exc):
        return str(exc)
    return None


@contextmanager
def removed_on_error(folder: Path) -> Iterator[None]:
    """Whatever the block creates at or under ``folder`` is removed if the block raises (Ctrl-C included), so
    that a failed start leaves nothing that changes the next one; what was there before stays."""
    folder = Path(folder)
    created = next((p for p in reversed([folder, *folder.parents]) if not p.exists()), None)
    before = set() if created is not None else set(folder.iterdir())
    try:
        yield
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        elif folder.is_dir():
            for path in set(folder.iterdir()) - before:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise

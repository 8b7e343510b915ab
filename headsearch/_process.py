"""Which process holds what: trials, MLflow runs and temporary folders name their ``host:pid``, so that
what a killed process (``kill -9``) left behind is recognised by the next process on the same host.
A process on another host is never presumed dead."""

from __future__ import annotations

import os
import socket


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def died_here(worker: str) -> bool:
    """Whether ``worker`` (``host:pid``) was a process of this host that is gone (never this process)."""
    host, _, pid = worker.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and worker != worker_name() and not process_alive(int(pid))

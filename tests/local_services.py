"""Servers a scale-out test starts on loopback, in a temporary folder, and stops whatever happens: a PostgreSQL
server (``initdb`` / ``pg_ctl``; as the ``postgres`` user when run as root, which initdb refuses) and an MLflow
tracking server backed by it. ``python tests/local_services.py`` starts both and prints their URIs until Ctrl-C
(what docs/scale-out.md's commands use)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

POSTGRES_BINARIES = ("initdb", "pg_ctl", "postgres", "psql")


def missing_postgres() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None."""
    absent = [b for b in POSTGRES_BINARIES if shutil.which(b) is None]
    if absent:
        return f"PostgreSQL's {', '.join(absent)} not on PATH"
    try:
        import psycopg  # noqa: F401  - the driver SQLAlchemy 2.1 (Optuna, MLflow) uses for postgresql:// URIs
    except ImportError:
        return "psycopg is not installed (pip install 'headsearch[postgres]')"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb refuses root"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 with database ``headsearch`` (trust authentication, loopback only) in a
    temporary folder of its own (the ``postgres`` user, when run as root, cannot enter pytest's); yields its
    SQLAlchemy URI. Stopped (immediate mode) and deleted on exit."""
    folder = Path(tempfile.mkdtemp(prefix="headsearch-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()
    try:
        _run(_as_owner(["initdb", "-D", str(data), "-U", "headsearch", "--auth=trust", "-E", "UTF8"]))
        options = f"-h 127.0.0.1 -p {port} -k {folder} -c max_connections=200"
        _run(_as_owner(["pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start"]))
        try:
            _run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "headsearch", "-d", "postgres", "-q", "-c",
                  "CREATE DATABASE headsearch"])
            yield f"postgresql://headsearch@127.0.0.1:{port}/headsearch"
        finally:
            subprocess.run(_as_owner(["pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"]), capture_output=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}")


def create_database(uri: str, name: str) -> str:
    """Another database on the server of ``uri``; returns its URI."""
    base, _, _ = uri.rpartition("/")
    host_port = base.split("@", 1)[1]
    host, port = host_port.split(":")
    _run(["psql", "-h", host, "-p", port, "-U", "headsearch", "-d", "postgres", "-q", "-c", f"CREATE DATABASE {name}"])
    return f"{base}/{name}"


@contextlib.contextmanager
def mlflow_server(backend_uri: str, folder: Path, *, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """``mlflow server`` on 127.0.0.1 with ``backend_uri`` as its store and artifacts under ``folder``; yields its
    tracking URI and process once it answers ``/health``. Terminated on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = (folder / "mlflow-server.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
                                "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
                                "--port", str(port), "--workers", "1"], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(uri, process)
        yield uri, process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        log.close()


@contextlib.contextmanager
def ray_cluster(folder: Path, *, workers: int = 2, cpus: int = 1) -> Iterator[str]:
    """A Ray cluster on this machine: a head node and ``workers`` worker nodes (``ray start``, ``cpus`` CPUs each,
    loopback only, no dashboard), with its session files under ``folder``; yields the head's address. On exit
    ``ray stop --force`` stops every Ray node of this machine (``ray start`` daemonises: there is no process of
    ours to stop), so do not run it beside other Ray work."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", str(cpus), "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    ray = [sys.executable, "-m", "ray.scripts.scripts"]
    try:
        _run([*ray, "start", "--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", str(folder),
              *common])
        for _ in range(workers):
            _run([*ray, "start", "--address", address, *common])
        yield address
    finally:
        subprocess.run([*ray, "stop", "--force"], capture_output=True)


def wait_healthy(uri: str, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{uri}/health", timeout=2) as reply:
            if reply.status == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"mlflow server at {uri} did not answer /health in {timeout_s:.0f} s")


if __name__ == "__main__":
    reason = missing_postgres()
    if reason:
        sys.exit(reason)
    with tempfile.TemporaryDirectory(prefix="headsearch-services-") as tmp, postgres_server() as db, \
            mlflow_server(create_database(db, "mlflow"), Path(tmp) / "mlflow") as (uri, _):
        print(f"storage: {db}\ntracking_uri: {uri}\n(Ctrl-C stops both and deletes {tmp})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)

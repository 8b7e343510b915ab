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


def _run(args: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(args, capture_output=True, text=True, env=env)
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
def mlflow_server(backend_uri: str, folder: Path) -> Iterator[tuple[str, MlflowServer]]:
    """``mlflow server`` on 127.0.0.1 with ``backend_uri`` as its store and artifacts under ``folder``; yields its
    tracking URI and handle once it answers ``/health``. Stopped on exit."""
    server = MlflowServer(backend_uri, folder, free_port())
    try:
        server.start()
        yield server.uri, server
    finally:
        server.stop()


class MlflowServer:
    """One ``mlflow server`` process, which a test may kill and start again on the same port."""

    def __init__(self, backend_uri: str, folder: Path, port: int):
        self.backend_uri, self.folder, self.port = backend_uri, folder, port
        self.uri = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        with (self.folder / "mlflow-server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri, "--artifacts-destination",
                 str(self.folder / "artifacts"), "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_healthy(self.uri, self.process)

    def stop(self, signal_number: int = 15) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal_number)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 9)
        self.process.wait()
        self.process = None


@contextlib.contextmanager
def ray_cluster(*, workers: int = 2, cpus: int = 1, env: dict[str, str] | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray cluster on this machine: a head node and ``workers`` worker nodes (``ray start``, ``cpus`` CPUs each,
    loopback only, no dashboard), its session files in a short temporary folder (Ray's socket paths must fit
    107 bytes, which pytest's folders do not); yields the head's address and the environment a process that joins
    it needs (token authentication off, as for every node: loopback only; Ray 2.60 otherwise reads a token from
    ``~/.ray/auth_token`` on some nodes and not others). On exit
    ``ray stop --force`` stops every Ray node of this machine (``ray start`` daemonises: there is no process of
    ours to stop), so do not run it beside other Ray work."""
    folder = Path(tempfile.mkdtemp(prefix="hs-ray-"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", str(cpus), "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    ray = [sys.executable, "-m", "ray.scripts.scripts"]
    env = {**os.environ, **(env or {}), "RAY_AUTH_MODE": "disabled"}  # ``env``: also what Ray's workers see
    try:
        _run([*ray, "start", "--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", str(folder),
              *common], env=env)
        for _ in range(workers):
            _run([*ray, "start", "--address", address, *common], env=env)
        yield address, env
    finally:
        subprocess.run([*ray, "stop", "--force"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


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

"""MLflow tracking: a parent run per study, a nested run per strategy and one per trial.

Default store: ``sqlite:///mlruns/mlflow.db`` with artefacts under ``mlruns/artifacts`` (MLflow 3's
plain file store is deprecated); ``MLFLOW_TRACKING_URI`` or the study's ``tracking_uri`` override it.
For any SQLite URI the artefacts go to ``artifacts/`` beside the database file.
Parents are passed explicitly (``parent_run_id``), which keeps nesting right when trials run elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from headsearch._process import died_here, worker_name

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
WORKER_TAG = "headsearch.worker"  # host:pid of the process that made the run


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Tracker:
    """MLflow runs of one experiment at ``tracking_uri`` (its own client: the global tracking URI is never
    changed). Every run is tagged with the ``host:pid`` that made it, so that ``close_stale_runs`` can end
    the runs a killed process left RUNNING."""

    def __init__(self, tracking_uri: str | None, experiment: str):
        from mlflow import MlflowClient

        self.uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
        location = None
        if self.uri.startswith("sqlite:///"):  # artefacts beside the database, not in ./mlruns of the cwd
            artifacts = Path(self.uri.removeprefix("sqlite:///")).parent / "artifacts"
            artifacts.mkdir(parents=True, exist_ok=True)
            location = artifacts.resolve().as_uri()
        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        else:
            self.experiment_id = found.experiment_id
        self.commit = git_commit()

    @contextmanager
    def run(self, name: str, *, parent_run_id: str | None = None, tags: Mapping[str, str] | None = None,
            end_status: str = "FINISHED") -> Iterator[str]:
        """A run (nested under ``parent_run_id`` when given); yields its id. It ends ``end_status``, KILLED
        when Ctrl-C or SIGTERM stops the process inside it, FAILED on an error."""
        all_tags = {"git_commit": self.commit, WORKER_TAG: worker_name(), **(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        status = "FAILED"
        try:
            yield run.info.run_id
            status = end_status
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self.client.set_terminated(run.info.run_id, status=status)

    def close_stale_runs(self) -> list[str]:
        """End as FAILED (tagged with the reason) the RUNNING runs of this experiment whose process died on
        this host (``kill -9`` leaves them running); returns their ids."""
        closed, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string="attributes.status = 'RUNNING'",
                                           max_results=1000, page_token=token)
            for run in page:
                worker = run.data.tags.get(WORKER_TAG)
                if worker is not None and died_here(worker):
                    self.client.set_tag(run.info.run_id, "error", f"killed: its process {worker} died")
                    self.client.set_terminated(run.info.run_id, status="FAILED")
                    closed.append(run.info.run_id)
            token = page.token
            if not token:
                return closed

    def log(self, run_id: str, *, params: Mapping[str, Any] | None = None, metrics: Mapping[str, float] | None = None,
            tags: Mapping[str, str] | None = None, artifacts: Mapping[str, str | bytes] | None = None) -> None:
        """Params, metrics, tags, and small artefacts (file name -> text or bytes) on ``run_id``."""
        from mlflow.entities import Metric, Param, RunTag

        client = self.client
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), 0, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)[:6000]) for k, v in (params or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )
        binary = {name: content for name, content in (artifacts or {}).items() if isinstance(content, bytes)}
        for name, content in (artifacts or {}).items():
            if name not in binary:
                client.log_text(run_id, content, name)
        if binary:
            with tempfile.TemporaryDirectory() as tmp:
                for name, content in binary.items():
                    (Path(tmp) / name).write_bytes(content)
                client.log_artifacts(run_id, tmp)

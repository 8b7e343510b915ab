"""The embedded default study under the Ray Tune driver, as a user runs it: `headsearch run quickstart --driver ray`
(default sampler NSGA-II, every built-in strategy), in a process of its own with a local Ray it starts itself."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from headsearch.study import load_run

pytest.importorskip("ray")
pytestmark = pytest.mark.slow


def test_the_quickstart_runs_under_ray(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = subprocess.run([sys.executable, "-m", "headsearch", "run", "quickstart", "--driver", "ray", "--n-trials", "2",
                           "--out", str(tmp_path / "run")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    info = load_run(tmp_path / "run")
    assert len(info["strategies"]) == 9 and (tmp_path / "run" / "report.md").is_file()
    for strategy in info["strategies"]:
        study = optuna.load_study(study_name=f"quickstart:{strategy}", storage=info["storage"])
        states = [t.state for t in study.trials]
        assert len(states) == 2 and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}, (strategy, states)
        assert TrialState.COMPLETE in states, strategy
    assert "knee:" in done.stdout

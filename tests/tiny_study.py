"""Study files for end-to-end tests: a tiny built-in model on the synthetic task; test plug-in strategies in
``tests/plugins`` (found through their entry points by processes that have that folder on their path)."""

from __future__ import annotations

from pathlib import Path

import yaml

PLUGINS = Path(__file__).parent / "plugins"


def write_study(tmp_path: Path, strategies: list[dict], **fields) -> Path:
    """``tmp_path/study.yaml``, whose run folder and MLflow store are in ``tmp_path`` too; ``fields``
    replace top-level settings."""
    study = {
        "name": "tiny",
        "output": str(tmp_path / "run"),
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "data": {"dataset": "synthetic", "search_rows": 60, "scoring_rows": 32},
        "model": {"max_length": 16, "builtin": {"num_layers": 2, "num_heads": 2, "hidden_size": 16, "intermediate_size": 32},
                  "train": {"epochs": 1, "train_rows": 200}},
        "hardware": {"seq_len": 16, "repeats": 1},
        "strategies": strategies,
        **fields,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path

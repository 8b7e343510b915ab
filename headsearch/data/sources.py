"""Named datasets and their splits: what the CLI and studies refer to by name.

``synthetic`` is the embedded default and needs no files. ``sst2`` and ``ag_news`` read the folders
described in ``../shared/data/README.md``; their default location is ``../shared/data/NAME`` from the
working directory (the repository root), overridable with a path.
"""

from __future__ import annotations

from pathlib import Path

from headsearch.data.loaders import load_ag_news, load_sst2
from headsearch.data.synthetic import negation_task
from headsearch.data.text import TextDataset
from headsearch.errors import DataError

DATASETS = ("synthetic", "sst2", "ag_news")
SPLITS = ("train", "dev", "test")
DEFAULT_SHARED_DATA = Path("../shared/data")
# Synthetic splits: fixed sizes and seeds, so every run sees the same data.
_SYNTHETIC = {"train": (3000, 1), "dev": (500, 2), "test": (500, 3)}


def default_data_dir(name: str) -> Path:
    return DEFAULT_SHARED_DATA / name


def load_split(name: str, split: str, data_dir: str | Path | None = None) -> TextDataset:
    """Split ``split`` (train, dev, test) of dataset ``name`` (one of ``DATASETS``)."""
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}; choose one of {list(DATASETS)}.")
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r} of {name}; choose one of {list(SPLITS)}.")
    if name == "synthetic":
        rows, seed = _SYNTHETIC[split]
        return negation_task(rows, seed=seed)
    folder = Path(data_dir) if data_dir is not None else default_data_dir(name)
    if not folder.is_dir():
        raise DataError(f"Data folder for {name} not found: {folder} (give its path: --data-dir, or data.data_dir in a study).")
    return load_sst2(folder, split) if name == "sst2" else load_ag_news(folder, split)

"""Where a study's splits come from: the user's files, a named preset, or the embedded synthetic task.

``DataSource`` reads train/dev/test through ``headsearch.data.files`` (a file per split, or one file
split by seeded, stratified fractions). ``sst2`` and ``ag_news`` are presets: DataSources over the
folders described in ``../shared/data/README.md`` (default location ``../shared/data/NAME`` from the
working directory, overridable with a path). ``synthetic`` is the embedded default and needs no files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from headsearch.data.files import Columns, read_file, split_by_fractions
from headsearch.data.synthetic import modifier_task, negation_task
from headsearch.data.text import TextDataset
from headsearch.errors import DataError

DATASETS = ("synthetic", "modifiers", "sst2", "ag_news")
SPLITS = ("train", "dev", "test")
DEFAULT_SHARED_DATA = Path("../shared/data")
# Synthetic splits: fixed sizes and seeds, so every run sees the same data.
_SYNTHETIC = {"train": (3000, 1), "dev": (500, 2), "test": (500, 3)}
# A `datasets` folder's own names for the dev split.
_DEV_NAMES = ("dev", "validation", "valid", "val")


@dataclass(frozen=True, kw_only=True)
class DataSource:
    """The splits of one dataset. ``files``: a file per split (``train`` at least); or ``file``: one file (or a
    ``datasets`` folder) that ``fractions`` split into train/dev/test with ``seed``, stratified by label
    (a ``datasets`` folder that holds its own splits needs no fractions). ``columns``: how to read rows;
    ``per_split``: other columns for some splits (a preset whose files differ)."""

    name: str
    files: Mapping[str, Path] = field(default_factory=dict)
    file: Path | None = None
    fractions: Mapping[str, float] | None = None
    columns: Columns = Columns()
    per_split: Mapping[str, Columns] = field(default_factory=dict)
    format: str | None = None
    seed: int = 0
    _labels: dict[str, tuple[str, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.file is None) == (not self.files):
            raise DataError(f"{self.name}: give either one file per split (train, dev, test) or one file to split.")
        unknown = sorted(set(self.files) - set(SPLITS))
        if unknown:
            raise DataError(f"{self.name}: unknown split(s) {unknown}; the splits are {list(SPLITS)}.")
        if self.files and "train" not in self.files:
            raise DataError(f"{self.name}: the train split is missing; every study needs a train file.")

    def load(self, split: str) -> TextDataset:
        """Split ``split`` (train, dev or test)."""
        if split not in SPLITS:
            raise DataError(f"Unknown split {split!r} of {self.name}; choose one of {list(SPLITS)}.")
        columns = self.per_split.get(split, self.columns)
        if columns.labels is None and split != "train":  # one label order for every split: the train split's
            columns = replace(columns, labels=self.label_names())
        if self.file is not None:
            if self.fractions:
                everything = read_file(self.file, columns, format=self.format, name=self.name)
                return split_by_fractions(everything, self.fractions, self.seed).get(split) or self._missing(split)
            return read_file(self.file, columns, format=self.format, split=self._folder_split(self.file, split),
                             name=f"{self.name}/{split}")
        if split not in self.files:
            return self._missing(split)
        path = self.files[split]
        folder_split = self._folder_split(path, split) if path.is_dir() else None
        return read_file(path, columns, format=self.format, split=folder_split, name=f"{self.name}/{split}")

    def label_names(self) -> tuple[str, ...]:
        """The label names, in id order, as the train split defines them (read once)."""
        if "names" not in self._labels:
            self._labels["names"] = self.load("train").label_names
        return self._labels["names"]

    def _missing(self, split: str) -> TextDataset:
        raise DataError(f"{self.name} has no {split} split; give data.{split} (a file) or data.split fractions.")

    @staticmethod
    def _folder_split(folder: Path, split: str) -> str:
        """The name a ``datasets`` folder gives ``split`` (its dev split is often called ``validation``)."""
        if not folder.is_dir():
            raise DataError(f"{folder}: a single file without data.split fractions; give the fractions to split it "
                            "(e.g. split: {dev: 0.1, test: 0.1}) or a file per split.")
        present = {p.name for p in folder.iterdir() if p.is_dir()}
        for name in _DEV_NAMES if split == "dev" else (split,):
            if name in present:
                return name
        return split


EMBEDDED = {"synthetic": negation_task, "modifiers": modifier_task}  # generated, no files


@dataclass(frozen=True)
class SyntheticSource:
    """An embedded task (``EMBEDDED``: ``synthetic`` is the negation task, ``modifiers`` the quickstart's),
    generated with fixed sizes and seeds."""

    name: str = "synthetic"

    def load(self, split: str) -> TextDataset:
        if split not in SPLITS:
            raise DataError(f"Unknown split {split!r} of {self.name}; choose one of {list(SPLITS)}.")
        rows, seed = _SYNTHETIC[split]
        data = EMBEDDED[self.name](rows, seed=seed)
        return TextDataset(data.texts, data.labels, data.label_names, f"{self.name}/{split}")

    def label_names(self) -> tuple[str, ...]:
        return self.load("dev").label_names


Source = DataSource | SyntheticSource


def default_data_dir(name: str) -> Path:
    return DEFAULT_SHARED_DATA / name


# -- presets: the named datasets as DataSources ----------------------------------------------------------------
SST2_LABELS = ("negative", "positive")
AG_NEWS_LABELS = ("World", "Sports", "Business", "Sci/Tech")
# In this AG News copy a line break inside a text is written as one or two backslashes, and '$' as '\$'.
_AG_DOLLAR = re.compile(r"\\\$")
_AG_BREAK = re.compile(r"\\+")


def _ag_news_text(text: str) -> str:
    return _AG_BREAK.sub(" ", _AG_DOLLAR.sub("$", text)).strip()


def preset(name: str, data_dir: str | Path | None = None) -> Source:
    """The source of a named dataset (``synthetic``, or ``sst2``/``ag_news`` in ``data_dir``)."""
    if name in EMBEDDED:
        return SyntheticSource(name)
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}; choose one of {list(DATASETS)}, or give your own files.")
    folder = Path(data_dir) if data_dir is not None else default_data_dir(name)
    if not folder.is_dir():
        raise DataError(f"Data folder for {name} not found: {folder} (give its path: --data-dir, or data.data_dir in a study).")
    if name == "sst2":  # label<TAB>sentence (train) or label<TAB>content (dev, test)
        labels = dict(enumerate(SST2_LABELS))
        dev_test = Columns(text="content", label="label", labels={str(k): v for k, v in labels.items()})
        return DataSource(name="sst2", files={s: folder / f"{s}.tsv" for s in SPLITS}, format="tsv",
                          columns=Columns(text="sentence", label="label", labels=dev_test.labels),
                          per_split={"dev": dev_test, "test": dev_test})
    if name == "ag_news":  # no header, every field quoted: "class","title","description"; classes 1..4
        names_file = folder / "classes.txt"
        names = tuple(n.strip() for n in names_file.read_text().splitlines() if n.strip()) if names_file.is_file() \
            else AG_NEWS_LABELS
        columns = Columns(text=(1, 2), label=0, header=False, labels={str(i + 1): n for i, n in enumerate(names)},
                          clean=_ag_news_text)
        return DataSource(name="ag_news", files={s: folder / f"{s}.csv" for s in SPLITS}, format="csv", columns=columns)
    raise DataError(f"Unknown dataset {name!r}; choose one of {list(DATASETS)}, or give your own files.")


def load_split(name: str, split: str, data_dir: str | Path | None = None) -> TextDataset:
    """Split ``split`` (train, dev, test) of the named dataset ``name`` (one of ``DATASETS``)."""
    return preset(name, data_dir).load(split)

"""Readers for the datasets in ``../shared/data`` (SST-2, AG News), generic CSV/TSV and HF ``datasets``.

Every reader returns a ``TextDataset`` and reports a malformed row with its file and line number.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

from headsearch.data.text import TextDataset
from headsearch.errors import DataError

SST2_LABELS = ("negative", "positive")
AG_NEWS_LABELS = ("World", "Sports", "Business", "Sci/Tech")


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"Data file not found: {path}")
    return path


def load_sst2(root: str | Path, split: str) -> TextDataset:
    """SST-2 as in ``shared/data/sst2``: ``label<TAB>sentence`` (train) or ``label<TAB>content`` (dev, test)."""
    path = _require_file(Path(root) / f"{split}.tsv")
    texts, labels = [], []
    with path.open(encoding="utf-8", newline="") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        if len(header) != 2 or header[0] != "label" or header[1] not in ("sentence", "content"):
            raise DataError(f"{path}:1: expected the header 'label<TAB>sentence' or 'label<TAB>content', got {header}.")
        for lineno, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 2 or parts[0] not in ("0", "1"):
                raise DataError(f"{path}:{lineno}: expected '0 or 1<TAB>text', got {line[:80]!r}.")
            labels.append(int(parts[0]))
            texts.append(parts[1])
    return TextDataset(tuple(texts), tuple(labels), SST2_LABELS, f"sst2/{split}")


# In this AG News copy a line break inside a text is written as one or two backslashes, and '$' as '\$'.
_AG_DOLLAR = re.compile(r"\\\$")
_AG_BREAK = re.compile(r"\\+")


def _ag_news_text(field: str) -> str:
    return _AG_BREAK.sub(" ", _AG_DOLLAR.sub("$", field)).strip()


def load_ag_news(root: str | Path, split: str) -> TextDataset:
    """AG News as in ``shared/data/ag_news``: quoted ``"class","title","description"`` with classes 1..4.

    The text is ``title + ". " + description``; labels are shifted to 0..3 in ``classes.txt`` order.
    """
    root = Path(root)
    path = _require_file(root / f"{split}.csv")
    names_file = root / "classes.txt"
    names = tuple(n.strip() for n in names_file.read_text().splitlines() if n.strip()) if names_file.is_file() \
        else AG_NEWS_LABELS
    texts, labels = [], []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        for row in reader:
            lineno = reader.line_num
            if len(row) != 3 or not row[0].isdigit() or not 1 <= int(row[0]) <= len(names):
                raise DataError(
                    f"{path}:{lineno}: expected '\"class 1..{len(names)}\",\"title\",\"description\"', got {row[:3]}."
                )
            labels.append(int(row[0]) - 1)
            texts.append(f"{_ag_news_text(row[1])}. {_ag_news_text(row[2])}")
    return TextDataset(tuple(texts), tuple(labels), names, f"ag_news/{split}")


def load_table(
    path: str | Path,
    *,
    text_columns: Sequence[str],
    label_column: str,
    delimiter: str | None = None,
    label_names: Sequence[str] | None = None,
) -> TextDataset:
    """A CSV/TSV with a header row. Several text columns are joined with '. '.

    Labels are mapped to 0..K-1: by ``label_names`` order when given, else by sorted distinct values
    (numerically when all are integers).
    """
    path = _require_file(Path(path))
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        missing = [c for c in (*text_columns, label_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}:1: column(s) {missing} not in the header {reader.fieldnames}.")
        raw_texts, raw_labels = [], []
        for row in reader:
            lineno = reader.line_num
            if None in row or any(row[c] is None for c in (*text_columns, label_column)):
                raise DataError(f"{path}:{lineno}: wrong number of fields for the header {reader.fieldnames}.")
            raw_texts.append(". ".join(row[c].strip() for c in text_columns))
            raw_labels.append((row[label_column].strip(), lineno))
    values = [v for v, _ in raw_labels]
    if label_names is None:
        distinct = set(values)
        ordered = sorted(distinct, key=int) if all(v.lstrip("-").isdigit() for v in distinct) else sorted(distinct)
        label_names = tuple(ordered)
    index = {name: i for i, name in enumerate(label_names)}
    labels = []
    for value, lineno in raw_labels:
        if value not in index:
            raise DataError(f"{path}:{lineno}: label {value!r} is not one of {list(label_names)}.")
        labels.append(index[value])
    return TextDataset(tuple(raw_texts), tuple(labels), tuple(label_names), path.stem)


def load_hf_dataset(name: str, split: str, *, text_column: str = "text", label_column: str = "label") -> TextDataset:
    """A split of a Hugging Face ``datasets`` dataset: a folder written by ``save_to_disk``, or a dataset
    name that ``datasets.load_dataset`` resolves (from its local cache here: these machines have no hub)."""
    try:
        import datasets
    except ImportError as exc:
        raise DataError("Loading a Hugging Face dataset needs `pip install headsearch[datasets]`.") from exc
    try:
        if Path(name).is_dir():
            ds = datasets.load_from_disk(name)
            ds = ds[split] if isinstance(ds, datasets.DatasetDict) else ds
        else:
            ds = datasets.load_dataset(name, split=split)
    except Exception as exc:  # datasets raises many types; the user needs the name and the cause
        raise DataError(f"Could not load the Hugging Face dataset {name!r} split {split!r}: {exc}") from exc
    missing = [c for c in (text_column, label_column) if c not in ds.column_names]
    if missing:
        raise DataError(f"Hugging Face dataset {name!r} has no column(s) {missing}; it has {ds.column_names}.")
    feature = ds.features[label_column]
    if hasattr(feature, "names"):
        names, labels = tuple(feature.names), tuple(int(v) for v in ds[label_column])
    else:
        values = sorted(set(ds[label_column]))
        index = {v: i for i, v in enumerate(values)}
        names, labels = tuple(str(v) for v in values), tuple(index[v] for v in ds[label_column])
    return TextDataset(tuple(ds[text_column]), labels, names, f"{Path(name).name}/{split}")

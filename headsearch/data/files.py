"""The user's data: CSV, TSV, JSON Lines or a Hugging Face ``datasets`` folder, read into TextDatasets.

One mechanism for every file: a ``Columns`` says which column holds the text (several are joined with
". "), which the optional second text of a pair (NLI, paraphrase: tokenised as a pair), and which the
label; labels may be integers or strings. A ``SplitFiles`` names a file per split, or one file that is
split with a seed and fractions, stratified by label. The named datasets (SST-2, AG News) are presets of
the same mechanism (``headsearch.data.sources``). Every error names the file, the line and the column.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from headsearch.data.text import TextDataset
from headsearch.errors import DataError

FORMATS = ("csv", "tsv", "jsonl", "datasets")
SPLITS = ("train", "dev", "test")
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}

Column = str | int  # a header name, or a 0-based position in a file without a header


@dataclass(frozen=True, kw_only=True)
class Columns:
    """Where a file keeps its texts and labels.

    ``text``: one column, or several joined with ". " (title and body); ``pair``: the second text of a
    sentence pair; ``label``: the label column. ``labels``: the label names, either in id order (raw labels
    are then ids ``0..K-1``) or as a mapping from raw value to name; default: the distinct raw values,
    sorted (numerically when all are integers). ``header``: whether a CSV/TSV starts with a header row
    (without one, columns are positions). ``clean``: a text transformation (presets only)."""

    text: Column | tuple[Column, ...] = "text"
    pair: Column | None = None
    label: Column = "label"
    labels: tuple[str, ...] | Mapping[str, str] | None = None
    header: bool = True
    clean: Callable[[str], str] | None = field(default=None, compare=False)

    @property
    def texts(self) -> tuple[Column, ...]:
        return self.text if isinstance(self.text, tuple) else (self.text,)

    @property
    def needed(self) -> tuple[Column, ...]:
        return (*self.texts, *(() if self.pair is None else (self.pair,)), self.label)


@dataclass(frozen=True)
class _Row:
    text: str
    pair: str | None
    label: str
    where: str  # "file:line" for error messages


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "datasets"
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: cannot tell the format from the suffix {path.suffix!r}; name it (format: "
                        f"{' | '.join(FORMATS)}) or use .csv, .tsv, .jsonl, or a `datasets` folder.")
    return kind


def read_file(path: str | Path, columns: Columns, *, format: str | None = None, split: str | None = None,
              name: str | None = None) -> TextDataset:
    """Every row of ``path`` as a TextDataset (``split``: the split of a ``datasets`` folder that holds several)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"Data file not found: {path}")
    kind = format or detect_format(path)
    if kind not in FORMATS:
        raise DataError(f"Unknown data format {kind!r}; choose one of {list(FORMATS)}.")
    if kind == "datasets":
        rows, label_names = _datasets_rows(path, columns, split)
    else:
        rows, label_names = list(_jsonl_rows(path, columns) if kind == "jsonl" else _table_rows(path, columns, kind)), None
    if not rows:
        raise DataError(f"{path}: no rows; a split needs at least one example.")
    return _dataset(rows, columns, label_names, name or (f"{path.name}/{split}" if split else path.stem))


def _table_rows(path: Path, columns: Columns, kind: str) -> Iterator[_Row]:
    delimiter = "\t" if kind == "tsv" else ","
    with open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader) if columns.header else None
            index = _positions(path, columns, header)
            width = len(header) if header is not None else None
            for fields in reader:
                where = f"{path}:{reader.line_num}"
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue  # blank line
                if width is not None and len(fields) != width:
                    raise DataError(f"{where}: {len(fields)} fields, the header has {width} ({header}); a quote or "
                                    f"delimiter is off in this row.")
                if max(index.values()) >= len(fields):
                    raise DataError(f"{where}: {len(fields)} fields, but column {max(index.values())} is read.")
                yield _make(columns, {c: fields[i] for c, i in index.items()}, where)
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num}: not valid {kind.upper()} ({exc}).") from exc
        except UnicodeDecodeError as exc:
            raise _not_utf8(path) from exc


def _positions(path: Path, columns: Columns, header: list[str] | None) -> dict[Column, int]:
    if header is None:
        bad = [c for c in columns.needed if not isinstance(c, int)]
        if bad:
            raise DataError(f"{path}: without a header row, columns are 0-based positions; got names {bad}.")
        return {c: c for c in columns.needed}
    header = [h.strip() for h in header]
    missing = [c for c in columns.needed if (c not in header if isinstance(c, str) else not 0 <= c < len(header))]
    if missing:
        raise DataError(f"{path}:1: column(s) {missing} not in the header {header}; name the text, pair and label "
                        f"columns (text_column, text_pair_column, label_column).")
    return {c: (header.index(c) if isinstance(c, str) else c) for c in columns.needed}


def _jsonl_rows(path: Path, columns: Columns) -> Iterator[_Row]:
    if any(isinstance(c, int) for c in columns.needed):
        raise DataError(f"{path}: JSON Lines columns are keys, not positions.")
    with open_text(path) as f:
        lineno = 0
        try:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}).") from exc
                if not isinstance(obj, dict):
                    raise DataError(f"{where}: each line must be a JSON object; got {type(obj).__name__}.")
                missing = [c for c in columns.needed if c not in obj]
                if missing:
                    raise DataError(f"{where}: no key(s) {missing}; this row has {sorted(obj)}.")
                yield _make(columns, {c: obj[c] for c in columns.needed}, where)
        except UnicodeDecodeError as exc:
            raise _not_utf8(path) from exc


# what `datasets` save_to_disk writes at the top of a folder: a DatasetDict's index, or a Dataset's state
_DATASETS_MARKERS = ("dataset_dict.json", "state.json")


def load_datasets_folder(path: Path):
    """The ``datasets.Dataset`` or ``DatasetDict`` that ``save_to_disk`` wrote to ``path``; any other folder is
    one line saying what to give instead."""
    if not any((path / marker).is_file() for marker in _DATASETS_MARKERS):
        tables = sorted(p.name for p in path.iterdir() if p.suffix.lower() in _SUFFIXES)
        hint = (f"it holds {', '.join(tables[:4])}{' ...' if len(tables) > 4 else ''}: give a file (data.file, or "
                "data.train / data.dev / data.test; --data FILE --dev FILE)") if tables else \
            "give a CSV, TSV or JSON Lines file"
        raise DataError(f"{path}: a folder, but not one written by `datasets` save_to_disk (no "
                        f"{' or '.join(_DATASETS_MARKERS)}); {hint}.")
    try:
        import datasets
    except ImportError as exc:
        raise DataError("Reading a Hugging Face `datasets` folder needs `pip install headsearch[datasets]`.") from exc
    try:
        return datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises many types; the user needs the folder and the cause
        raise DataError(f"{path}: cannot read this `datasets` folder ({type(exc).__name__}: {exc}).") from exc


def _datasets_rows(path: Path, columns: Columns, split: str | None) -> tuple[list[_Row], tuple[str, ...] | None]:
    import datasets

    ds = load_datasets_folder(path)
    if isinstance(ds, datasets.DatasetDict):
        if split is None or split not in ds:
            raise DataError(f"{path}: holds the splits {sorted(ds)}; name one of them for each split.")
        ds = ds[split]
    elif split is not None:
        raise DataError(f"{path}: one dataset without splits; give data.split fractions (e.g. {{dev: 0.1, test: 0.1}}) "
                        "to divide it.")
    missing = [c for c in columns.needed if c not in ds.column_names]
    if missing:
        raise DataError(f"{path}: no column(s) {missing}; it has {ds.column_names}.")
    feature = ds.features[columns.label]
    names = tuple(feature.names) if hasattr(feature, "names") else None
    rows = []
    for i, record in enumerate(ds.select_columns(list(dict.fromkeys(columns.needed)))):
        raw = dict(record)
        if names is not None:
            raw[columns.label] = names[int(raw[columns.label])]
        rows.append(_make(columns, raw, f"{path}[{split or 'rows'}] row {i}"))
    return rows, names


def _make(columns: Columns, raw: Mapping[Column, object], where: str) -> _Row:
    def text(c: Column) -> str:
        value = raw[c]
        if value is None or not isinstance(value, str | int | float):
            raise DataError(f"{where}: column {c!r} holds {value!r}, not text.")
        value = str(value).strip()
        return columns.clean(value) if columns.clean else value

    label = raw[columns.label]
    if label is None or isinstance(label, bool) or not isinstance(label, str | int | float) or str(label).strip() == "":
        raise DataError(f"{where}: column {columns.label!r} holds no label ({label!r}).")
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return _Row(". ".join(text(c) for c in columns.texts), None if columns.pair is None else text(columns.pair),
                str(label).strip(), where)


def _dataset(rows: list[_Row], columns: Columns, feature_names: tuple[str, ...] | None, name: str) -> TextDataset:
    raw_to_name = _label_map(columns.labels, [r.label for r in rows], feature_names)
    names = tuple(dict.fromkeys(raw_to_name.values()))
    index = {n: i for i, n in enumerate(names)}
    labels = []
    for row in rows:
        if row.label not in raw_to_name:
            raise DataError(f"{row.where}: label {row.label!r} is not one of {list(raw_to_name)} (column "
                            f"{columns.label!r}).")
        labels.append(index[raw_to_name[row.label]])
    pairs = None if columns.pair is None else tuple(r.pair for r in rows)
    return TextDataset(tuple(r.text for r in rows), tuple(labels), names, name, pairs=pairs)


def _label_map(labels: tuple[str, ...] | Mapping[str, str] | None, raw: Sequence[str],
               feature_names: tuple[str, ...] | None) -> dict[str, str]:
    """Raw label value -> label name, in the order of the label ids."""
    if isinstance(labels, Mapping):
        return {str(k): str(v) for k, v in labels.items()}
    if labels is not None:
        return {**{str(i): n for i, n in enumerate(labels)}, **{n: n for n in labels}}
    if feature_names is not None:
        return {n: n for n in feature_names}
    distinct = set(raw)
    ordered = sorted(distinct, key=int) if all(_is_int(v) for v in distinct) else sorted(distinct)
    return {v: v for v in ordered}


def _is_int(value: str) -> bool:
    return value.lstrip("-").isdigit()


def open_text(path: Path):
    """A text file as csv and json read it: UTF-8, a byte-order mark (Excel's "CSV UTF-8") dropped, line ends
    left to the csv reader (a quoted field may hold a newline)."""
    return path.open(encoding="utf-8-sig", newline="")


def _not_utf8(path: Path) -> DataError:
    """The first line that is not UTF-8 (text files are decoded in chunks, so the decoder cannot say)."""
    with path.open("rb") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return DataError(f"{path}:{lineno}: not UTF-8 (byte {line[exc.start]:#04x} at position {exc.start}); "
                                 "save the file as UTF-8.")
    return DataError(f"{path}: not UTF-8; save the file as UTF-8.")


def split_by_fractions(data: TextDataset, fractions: Mapping[str, float], seed: int) -> dict[str, TextDataset]:
    """``data`` split into ``train`` and the named fractions (e.g. ``{"dev": 0.1, "test": 0.1}``), stratified by
    label with a fixed seed (scikit-learn's ``train_test_split``)."""
    from sklearn.model_selection import train_test_split

    unknown = sorted(set(fractions) - {"dev", "test"})
    if unknown or not fractions:
        raise DataError(f"split fractions name dev and/or test; got {sorted(fractions)}.")
    if any(not 0 < f < 1 for f in fractions.values()) or sum(fractions.values()) >= 1:
        raise DataError(f"split fractions must each be in (0, 1) and leave rows for train; got {dict(fractions)}.")
    rows = list(range(len(data)))
    out: dict[str, TextDataset] = {}
    remaining, left = rows, 1.0
    for split in ("dev", "test"):
        if split not in fractions:
            continue
        share = fractions[split] / left
        labels = [data.labels[i] for i in remaining]
        try:
            remaining, taken = train_test_split(remaining, test_size=share, random_state=seed, stratify=labels)
        except ValueError as exc:
            raise DataError(f"{data.name}: cannot split {fractions[split]:g} of {len(data)} rows for {split}, "
                            f"stratified by label ({exc}); give more rows or separate files.") from exc
        out[split] = data.subset(sorted(taken), f"{data.name}[{split} {fractions[split]:g}, seed {seed}]")
        left -= fractions[split]
    out["train"] = data.subset(sorted(remaining), f"{data.name}[train, seed {seed}]")
    return out

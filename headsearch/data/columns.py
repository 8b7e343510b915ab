"""Which columns of a user's file hold the text, the pair's second text and the label, when not named.

Names come first (the usual ones of GLUE-style and Hugging Face datasets); otherwise the label is the
column with few distinct values and the text the one with the longest values. ``headsearch init`` uses
this to write a study; a study itself always names its columns.
"""

from __future__ import annotations

import csv
import json
from itertools import islice
from pathlib import Path

from headsearch.data.files import detect_format, load_datasets_folder, open_text
from headsearch.errors import DataError

TEXT_NAMES = ("text", "sentence", "content", "review", "document", "body", "question", "utterance", "tweet")
PAIR_NAMES = (("premise", "hypothesis"), ("sentence1", "sentence2"), ("question1", "question2"),
              ("question", "sentence"), ("text_a", "text_b"), ("text", "text_pair"), ("query", "passage"))
LABEL_NAMES = ("label", "labels", "class", "category", "target", "y", "sentiment", "gold_label")
SAMPLE_ROWS = 500


def sample_columns(path: Path, format: str | None = None) -> dict[str, list[str]]:
    """The first rows of ``path`` as column name -> values (as text)."""
    kind = format or detect_format(path)
    if kind == "datasets":
        import datasets

        ds = load_datasets_folder(path)
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"] if "train" in ds else next(iter(ds.values()))
        rows = ds.select(range(min(SAMPLE_ROWS, len(ds))))
        return {c: [str(v) for v in rows[c]] for c in ds.column_names}
    try:
        with open_text(path) as f:
            if kind == "jsonl":
                records = [json.loads(line) for line in islice(f, SAMPLE_ROWS) if line.strip()]
                names = list(dict.fromkeys(k for r in records if isinstance(r, dict) for k in r))
                return {n: [str(r.get(n, "")) for r in records if isinstance(r, dict)] for n in names}
            reader = csv.reader(f, delimiter="\t" if kind == "tsv" else ",")
            header = next(reader, [])
            rows = list(islice(reader, SAMPLE_ROWS))
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read its first rows ({exc}).") from exc
    return {h.strip(): [r[i] if i < len(r) else "" for r in rows] for i, h in enumerate(header)}


def guess_columns(sample: dict[str, list[str]], *, text: str | None = None, pair: str | None = None,
                  label: str | None = None) -> tuple[str, str | None, str]:
    """``(text, pair or None, label)`` columns; the ones given are checked and kept."""
    names = list(sample)
    lower = {n.lower(): n for n in names}
    for given in (text, pair, label):
        if given is not None and given not in sample:
            raise DataError(f"column {given!r} is not in the file; its columns are {names}.")
    if label is None:
        label = next((lower[n] for n in LABEL_NAMES if n in lower), None) or _fewest_values(sample, exclude=(text, pair))
    if text is None and pair is None:
        for a, b in PAIR_NAMES:
            if a in lower and b in lower:
                text, pair = lower[a], lower[b]
                break
    if text is None:
        text = next((lower[n] for n in TEXT_NAMES if n in lower and lower[n] not in (label, pair)), None) \
            or _longest_values(sample, exclude=(label, pair))
    if text is None or label is None or text == label:
        raise DataError(f"cannot tell the text and label columns among {names}; name them (--text-column, --label-column).")
    return text, pair, label


def _fewest_values(sample: dict[str, list[str]], exclude: tuple) -> str | None:
    counts = {n: len(set(v)) for n, v in sample.items() if n not in exclude and v}
    best = min(counts, key=counts.get, default=None)
    return best if best is not None and 1 < counts[best] <= max(20, len(sample[best]) // 10) else None


def _longest_values(sample: dict[str, list[str]], exclude: tuple) -> str | None:
    lengths = {n: sum(map(len, v)) / max(1, len(v)) for n, v in sample.items() if n not in exclude}
    return max(lengths, key=lengths.get, default=None)

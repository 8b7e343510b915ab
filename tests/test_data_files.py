"""The user's own data: CSV, TSV, JSON Lines and `datasets` folders; pairs; string and integer labels; one file
split by seeded, stratified fractions; every error names file, line and column."""

from __future__ import annotations

import json

import pytest

from headsearch.data import Columns, DataSource, read_file
from headsearch.errors import DataError

ROWS = [("great film", "it was fun", "pos"), ("bad plot", "boring", "neg"), ("fine", "ok", "neutral"),
        ("awful", "very bad", "neg"), ("superb", "loved it", "pos"), ("meh", "so so", "neutral")]


def write_csv(path, rows=ROWS, sep=","):
    lines = [sep.join(("premise", "hypothesis", "label"))] + [sep.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_jsonl(path, rows=ROWS):
    path.write_text("".join(json.dumps({"premise": a, "hypothesis": b, "label": y}) + "\n" for a, b, y in rows))
    return path


PAIR = Columns(text="premise", pair="hypothesis", label="label")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_formats_read_the_same_rows(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    write_jsonl(path) if suffix == ".jsonl" else write_csv(path, sep="\t" if suffix == ".tsv" else ",")
    ds = read_file(path, PAIR)
    assert ds.texts[0] == "great film" and ds.pairs[0] == "it was fun"
    assert ds.label_names == ("neg", "neutral", "pos")  # string labels, sorted
    assert [ds.label_names[y] for y in ds.labels] == [r[2] for r in ROWS]
    single = read_file(path, Columns(text=("premise", "hypothesis"), label="label"))
    assert single.pairs is None and single.texts[0] == "great film. it was fun"


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path, suffix):
    """Excel's "CSV UTF-8" (and some JSON Lines writers) start the file with U+FEFF: read as data, and the first
    column keeps its name for detection too."""
    from headsearch.data.columns import guess_columns, sample_columns

    plain = tmp_path / f"plain{suffix}"
    write_jsonl(plain) if suffix == ".jsonl" else write_csv(plain, sep="\t" if suffix == ".tsv" else ",")
    marked = tmp_path / f"marked{suffix}"
    marked.write_bytes("\ufeff".encode() + plain.read_bytes())
    assert guess_columns(sample_columns(marked)) == ("premise", "hypothesis", "label")
    a, b = read_file(marked, PAIR), read_file(plain, PAIR)
    assert (a.texts, a.pairs, a.labels, a.label_names) == (b.texts, b.pairs, b.labels, b.label_names)


def test_datasets_folder(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the optional extra headsearch[datasets] is not installed")
    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "neutral", "pos"])})
    index = {"neg": 0, "neutral": 1, "pos": 2}
    cols = {"premise": [r[0] for r in ROWS], "hypothesis": [r[1] for r in ROWS], "label": [index[r[2]] for r in ROWS]}
    whole = datasets.Dataset.from_dict(cols, features=features)
    datasets.DatasetDict({"train": whole, "validation": whole.select([0, 1, 2])}).save_to_disk(str(tmp_path / "ds"))
    source = DataSource(name="mine", file=tmp_path / "ds", columns=PAIR)
    train, dev = source.load("train"), source.load("dev")  # the dev split is the folder's "validation"
    assert train.label_names == ("neg", "neutral", "pos") and len(train) == 6 and len(dev) == 3
    assert dev.pairs == ("it was fun", "boring", "ok")
    with pytest.raises(DataError, match=r"holds the splits \['train', 'validation'\]"):
        source.load("test")
    with pytest.raises(DataError, match=r"no column\(s\) \['sentence'\]"):
        DataSource(name="mine", file=tmp_path / "ds", columns=Columns(text="sentence")).load("train")
    whole.save_to_disk(str(tmp_path / "one"))  # one dataset, no splits: only fractions divide it
    with pytest.raises(DataError, match="one dataset without splits; give data.split fractions"):
        DataSource(name="one", file=tmp_path / "one", columns=PAIR).load("dev")
    parts = DataSource(name="one", file=tmp_path / "one", columns=PAIR, fractions={"dev": 0.5})
    assert len(parts.load("dev")) == 3 and len(parts.load("train")) == 3


def test_integer_labels_and_label_names(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,2\nb,0\nc,1\nd,10\n")
    assert read_file(path, Columns()).label_names == ("0", "1", "2", "10")  # numeric order
    ids = tmp_path / "ids.csv"
    ids.write_text("text,label\na,1\nb,0\n")
    ds = read_file(ids, Columns(labels=("neg", "pos")))  # ids 0..K-1 named in order
    assert ds.label_names == ("neg", "pos") and ds.labels == (1, 0)
    mapped = read_file(ids, Columns(labels={"0": "bad", "1": "good"}))
    assert mapped.label_names == ("bad", "good") and mapped.labels == (1, 0)
    with pytest.raises(DataError, match=r"ids\.csv:3: label '0' is not one of \['1'\]"):
        read_file(ids, Columns(labels={"1": "pos"}))


def test_one_file_split_by_stratified_fractions(tmp_path):
    rows = [(f"text {i}", f"second {i}", ("neg", "pos", "neutral")[i % 3]) for i in range(90)]
    path = write_csv(tmp_path / "all.csv", rows)
    source = DataSource(name="all", file=path, fractions={"dev": 0.2, "test": 0.1}, columns=PAIR, seed=3)
    train, dev, test = (source.load(s) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (63, 18, 9)
    assert set(train.texts) | set(dev.texts) | set(test.texts) == {r[0] for r in rows}
    assert not set(train.texts) & set(dev.texts) and not set(dev.texts) & set(test.texts)
    assert sorted(dev.labels.count(k) for k in range(3)) == [6, 6, 6]  # stratified by label
    assert dev == DataSource(name="all", file=path, fractions={"dev": 0.2, "test": 0.1}, columns=PAIR, seed=3).load("dev")
    assert dev != DataSource(name="all", file=path, fractions={"dev": 0.2, "test": 0.1}, columns=PAIR, seed=4).load("dev")
    with pytest.raises(DataError, match="must each be in"):
        DataSource(name="all", file=path, fractions={"dev": 0.6, "test": 0.5}, columns=PAIR).load("dev")


def test_split_files_share_the_train_label_order(tmp_path):
    train = write_csv(tmp_path / "train.csv")
    dev = write_csv(tmp_path / "dev.csv", [ROWS[0], ROWS[2]])  # no "neg" row in dev
    source = DataSource(name="mine", files={"train": train, "dev": dev}, columns=PAIR)
    assert source.load("dev").label_names == source.load("train").label_names == ("neg", "neutral", "pos")
    surprise = write_csv(tmp_path / "dev2.csv", [("x", "y", "angry")])
    with pytest.raises(DataError, match=r"dev2\.csv:2: label 'angry' is not one of"):
        DataSource(name="mine", files={"train": train, "dev": surprise}, columns=PAIR).load("dev")
    with pytest.raises(DataError, match="has no test split"):
        source.load("test")


def test_errors_name_file_line_and_column(tmp_path):
    path = write_csv(tmp_path / "d.csv")
    with pytest.raises(DataError, match=r"d\.csv:1: column\(s\) \['sentence'\] not in the header \['premise', "):
        read_file(path, Columns(text="sentence"))
    bad_row = tmp_path / "rows.csv"
    bad_row.write_text("text,label\ngood,pos\nan extra, field,neg\n")
    with pytest.raises(DataError, match=r"rows\.csv:3: 3 fields, the header has 2"):
        read_file(bad_row, Columns())
    empty_label = tmp_path / "empty.csv"
    empty_label.write_text("text,label\ngood,\n")
    with pytest.raises(DataError, match=r"empty\.csv:2: column 'label' holds no label"):
        read_file(empty_label, Columns())
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("text\tlabel\ngood\tpos\ncaf\xe9\tneg\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.tsv:3: not UTF-8"):
        read_file(latin, Columns())
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "a", "label": "x"}\n{"text": "b"\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: not valid JSON"):
        read_file(jsonl, Columns())
    jsonl.write_text('{"text": "a", "label": "x"}\n{"txt": "b", "label": "y"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: no key\(s\) \['text'\]"):
        read_file(jsonl, Columns())
    header_only = tmp_path / "h.csv"
    header_only.write_text("text,label\n")
    with pytest.raises(DataError, match="no rows"):
        read_file(header_only, Columns())
    with pytest.raises(DataError, match="cannot tell the format"):
        read_file(path.rename(tmp_path / "d.xlsx"), Columns())

"""Loaders read the shared datasets exactly as their README describes; bad files name file and line."""

import pytest

from headsearch.data import WordTokenizer, load_ag_news, load_sst2, load_table, negation_task
from headsearch.errors import DataError


def test_sst2_splits(shared_data):
    sizes = {"train": 67349, "dev": 872, "test": 1821}
    for split, n in sizes.items():
        ds = load_sst2(shared_data / "sst2", split)
        assert len(ds) == n and ds.num_classes == 2 and set(ds.labels) == {0, 1}
    dev = load_sst2(shared_data / "sst2", "dev")
    assert dev.texts[0] == "one long string of cliches ." and dev.labels[0] == 0


def test_ag_news_splits(shared_data):
    for split, n in {"train": 6000, "dev": 800, "test": 800}.items():
        ds = load_ag_news(shared_data / "ag_news", split)
        assert len(ds) == n
        assert [ds.labels.count(k) for k in range(4)] == [n // 4] * 4  # stratified 1,500 / 200 / 200 per class
    ds = load_ag_news(shared_data / "ag_news", "dev")
    assert ds.label_names == ("World", "Sports", "Business", "Sci/Tech")
    assert ds.texts[0].startswith("Putin praises Ukraine #39;s leader. Russian President")
    assert ds.labels[0] == 0
    train = load_ag_news(shared_data / "ag_news", "train")
    assert not any("\\" in t for t in train.texts)  # escapes decoded
    assert any("$27 million" in t for t in train.texts)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_sst2(tmp_path, "dev")


def test_malformed_rows_report_file_and_line(tmp_path):
    (tmp_path / "dev.tsv").write_text("label\tcontent\n1\tfine\n7\tbad label\n")
    with pytest.raises(DataError, match=r"dev\.tsv:3"):
        load_sst2(tmp_path, "dev")
    (tmp_path / "dev.tsv").write_text("text\tlabel\n")
    with pytest.raises(DataError, match=r"dev\.tsv:1: expected the header"):
        load_sst2(tmp_path, "dev")
    (tmp_path / "dev.csv").write_text('"1","t","d"\n"2","only two"\n')
    with pytest.raises(DataError, match=r"dev\.csv:2"):
        load_ag_news(tmp_path, "dev")


def test_generic_table(tmp_path):
    f = tmp_path / "reviews.csv"
    f.write_text("title,body,stars\nA,good,5\nB,bad,1\nC,meh,3\nD,fine,5\n")
    ds = load_table(f, text_columns=["title", "body"], label_column="stars")
    assert ds.label_names == ("1", "3", "5") and ds.labels == (2, 0, 1, 2)
    assert ds.texts[0] == "A. good"
    named = load_table(f, text_columns=["body"], label_column="stars", label_names=["5", "3", "1"])
    assert named.labels == (0, 2, 1, 0)
    with pytest.raises(DataError, match="column\\(s\\) \\['text'\\] not in the header"):
        load_table(f, text_columns=["text"], label_column="stars")
    with pytest.raises(DataError, match=r"reviews\.csv:3: label '1' is not one of"):
        load_table(f, text_columns=["body"], label_column="stars", label_names=["5", "3"])
    tsv = tmp_path / "x.tsv"
    tsv.write_text("text\tlabel\nhello\tpos\nbye\n")
    with pytest.raises(DataError, match=r"x\.tsv:3: wrong number of fields"):
        load_table(tsv, text_columns=["text"], label_column="label")


def test_synthetic_task_is_seeded_and_balanced():
    a, b = negation_task(400, seed=1), negation_task(400, seed=1)
    assert a == b and a != negation_task(400, seed=2)
    assert 0.4 < sum(a.labels) / len(a) < 0.6
    negated = [("not" in t.split()) for t in a.texts]
    assert 0.2 < sum(negated) / len(a) < 0.4
    four = negation_task(100, num_classes=4, seed=0)
    assert four.num_classes == 4 and set(four.labels) <= {0, 1, 2, 3}


def test_dataset_fingerprint_and_sampling():
    ds = negation_task(50, seed=0)
    assert ds.fingerprint() == negation_task(50, seed=0).fingerprint() != negation_task(50, seed=1).fingerprint()
    sub = ds.sample(10, seed=3)
    assert len(sub) == 10 and set(sub.texts) <= set(ds.texts) and sub == ds.sample(10, seed=3)
    assert len(ds.head(5)) == 5


def test_word_tokenizer(tmp_path):
    tok = WordTokenizer.build(["Not good!", "good film"], max_size=10)
    assert tok.vocab[:3] == ("[PAD]", "[UNK]", "good")
    ids, mask = tok.encode(["good unknownword !", "film"], max_length=2)
    assert ids.tolist() == [[2, 1], [tok.vocab.index("film"), 0]] and mask.tolist() == [[1, 1], [1, 0]]
    tok.save(tmp_path)
    assert WordTokenizer.load(tmp_path).vocab == tok.vocab


def test_hf_dataset_from_disk(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the optional extra headsearch[datasets] is not installed")
    from headsearch.data import load_hf_dataset

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    train = datasets.Dataset.from_dict({"text": ["good", "bad", "fine"], "label": [1, 0, 1]}, features=features)
    datasets.DatasetDict({"train": train}).save_to_disk(str(tmp_path / "ds"))
    ds = load_hf_dataset(str(tmp_path / "ds"), "train")
    assert ds.texts == ("good", "bad", "fine") and ds.labels == (1, 0, 1) and ds.label_names == ("neg", "pos")
    with pytest.raises(DataError, match=r"no column\(s\) \['sentence'\]"):
        load_hf_dataset(str(tmp_path / "ds"), "train", text_column="sentence")
    with pytest.raises(DataError, match="Could not load"):
        load_hf_dataset(str(tmp_path / "ds"), "test")

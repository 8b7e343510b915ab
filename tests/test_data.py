"""Loaders read the shared datasets exactly as their README describes; bad files name file and line."""

import pytest

from headsearch.data import load_split, negation_task
from headsearch.errors import DataError


def test_sst2_preset(shared_data):
    sizes = {"train": 67349, "dev": 872, "test": 1821}
    for split, n in sizes.items():
        ds = load_split("sst2", split, shared_data / "sst2")
        assert len(ds) == n and ds.label_names == ("negative", "positive") and set(ds.labels) == {0, 1}
    dev = load_split("sst2", "dev", shared_data / "sst2")
    assert dev.texts[0] == "one long string of cliches ." and dev.labels[0] == 0 and dev.name == "sst2/dev"


def test_ag_news_preset(shared_data):
    for split, n in {"train": 6000, "dev": 800, "test": 800}.items():
        ds = load_split("ag_news", split, shared_data / "ag_news")
        assert len(ds) == n
        assert [ds.labels.count(k) for k in range(4)] == [n // 4] * 4  # stratified 1,500 / 200 / 200 per class
    ds = load_split("ag_news", "dev", shared_data / "ag_news")
    assert ds.label_names == ("World", "Sports", "Business", "Sci/Tech")
    assert ds.texts[0].startswith("Putin praises Ukraine #39;s leader. Russian President")
    assert ds.labels[0] == 0
    train = load_split("ag_news", "train", shared_data / "ag_news")
    assert not any("\\" in t for t in train.texts)  # escapes decoded
    assert any("$27 million" in t for t in train.texts)


def test_missing_preset_folder_and_file(tmp_path):
    with pytest.raises(DataError, match="Data folder for sst2 not found"):
        load_split("sst2", "dev", tmp_path / "nowhere")
    with pytest.raises(DataError, match="Data file not found"):
        load_split("sst2", "dev", tmp_path)


def test_presets_report_file_and_line(tmp_path):
    (tmp_path / "dev.tsv").write_text("label\tcontent\n1\tfine\n7\tbad label\n")
    (tmp_path / "train.tsv").write_text("label\tsentence\n1\tfine\n")
    with pytest.raises(DataError, match=r"dev\.tsv:3: label '7' is not one of \['0', '1'\]"):
        load_split("sst2", "dev", tmp_path)
    (tmp_path / "dev.tsv").write_text("text\tlabel\n")
    with pytest.raises(DataError, match=r"dev\.tsv:1: column\(s\) \['content'\] not in the header"):
        load_split("sst2", "dev", tmp_path)
    (tmp_path / "dev.csv").write_text('"1","t","d"\n"2","only two"\n')
    with pytest.raises(DataError, match=r"dev\.csv:2: 2 fields, but column 2 is read"):
        load_split("ag_news", "dev", tmp_path)


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




def test_modifier_task_labels_follow_cue_and_modifier():
    """The quickstart's task: each sentence has one cue word of its topic and at most one modifier, which shifts
    the label by its own amount; seeded; no files (the `modifiers` preset generates it)."""
    from headsearch.data.synthetic import MODIFIERS, modifier_task

    data = modifier_task(400, seed=5)
    assert data.texts == modifier_task(400, seed=5).texts and data.texts != modifier_task(400, seed=6).texts
    shifts = {m: 1 + i % 3 for i, m in enumerate(MODIFIERS)}
    modified = 0
    for text, label in zip(data.texts, data.labels, strict=True):
        words = text.split()
        (cue,) = [w for w in words if w.startswith("c") and "x" in w]
        present = [w for w in words if w in shifts]
        assert len(present) <= 1
        modified += bool(present)
        assert label == (int(cue[1]) + sum(shifts[m] for m in present)) % 4
    assert 150 < modified < 250  # about half the sentences carry a modifier
    assert load_split("modifiers", "dev").label_names == ("class0", "class1", "class2", "class3")


def test_difficulty_tasks_label_by_their_rules():
    """``lookup_task``: bad iff one active lookup answers n; ``vote_task``: bad iff most active lookups answer n,
    every vote at the tie-break (floor(n/2) or floor(n/2)+1 n answers)."""
    from headsearch.data.synthetic import count_lookups, lookup_task, vote_task

    def noes(text: str) -> tuple[int, int]:
        words = text.split()
        active = [w[1:] for w in words if w[0] == "k" and w[1:].isdigit()]
        return len(active), sum(f"n{j}" in words for j in active)

    lookups, votes = lookup_task(300, seed=3), vote_task(300, seed=3)
    for text, label in zip(lookups.texts, lookups.labels, strict=True):
        active, n = noes(text)
        assert count_lookups(text) == active and n == label  # exactly one n answer in bad sentences
    seen = set()
    for text, label in zip(votes.texts, votes.labels, strict=True):
        active, n = noes(text)
        assert n in (active // 2, active // 2 + 1) and label == int(2 * n > active)
        seen.add((active, label))
    assert seen == {(a, b) for a in range(1, 5) for b in (0, 1)}
    with pytest.raises(ValueError, match="vote_task needs"):
        vote_task(3, num_lookups=5, length=8)

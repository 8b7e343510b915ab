"""A new user's first study: their own Hugging Face classifier folder and CSV, `headsearch init` writes the study,
`headsearch run` searches it with the model's own head, `headsearch export` hands back their class, pruned."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hf_models import LABELS, WORDS, save_tiny_classifier
from inprocess import cli as inprocess_cli

from headsearch.export import load_transformers
from headsearch.heads import HeadConfig
from headsearch.searchspace import load_space
from headsearch.strategies import get
from headsearch.study import build_context, load_points, run_study
from headsearch.study_config import load_study
from headsearch.study_init import write_study


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "headsearch", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def write_reviews(path, rows: int = 150, seed: int = 0, labels=LABELS) -> None:
    rng = random.Random(seed)
    lines = ["id,review,sentiment"]
    for i in range(rows):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        lines.append(f"{i},{text},{labels[i % len(labels)]}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("user")
    model = save_tiny_classifier("bert", root / "my-bert")
    write_reviews(root / "reviews.csv")
    return root, model


def test_init_writes_a_first_study_and_the_longer_strategies_commented_out(user_files, tmp_path):
    root, model = user_files
    study = write_study(model, root / "reviews.csv", tmp_path / "first.yaml")
    assert [s.name for s in load_study(study).strategies] == ["dense", "importance", "nas", "random"]
    every = tmp_path / "every.yaml"  # what a user gets by uncommenting the longer strategies
    every.write_text(study.read_text().replace("  # - {", "  - {"))
    runs = load_study(every).strategies
    assert [s.name for s in runs] == ["dense", "importance", "nas", "random", "astar", "cahp", "static_gates",
                                      "budgeted_gates"]
    for run in runs:  # every strategy and override init writes is one the search spaces know
        load_space(get(run.name).cls.search_space, run.space)


@pytest.mark.slow
def test_init_run_export(user_files):
    root, model = user_files
    study = root / "study.yaml"
    result = cli("init", str(model), "--data", str(root / "reviews.csv"), "--out", str(study), "--max-length", "16")
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load(study.read_text())
    assert written["data"]["text_column"] == "review" and written["data"]["label_column"] == "sentiment"
    assert written["data"]["split"] == {"dev": 0.1, "test": 0.1} and written["model"]["train"] is None
    assert "labels matched by name" in study.read_text() and "labels matched by name" in result.stdout
    for run in written["strategies"]:  # every strategy and override init writes is one the search spaces know
        load_space(get(run["name"]).cls.search_space, run.get("space"))
    # a smaller search than init writes, so that the test is quick
    written.update(output=str(root / "run"), tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                   hardware={"seq_len": 16, "repeats": 1},
                   strategies=[{"name": "dense", "n_trials": 1}, {"name": "random", "n_trials": 3},
                               {"name": "importance", "n_trials": 2},
                               {"name": "static_gates", "n_trials": 1, "space": {"train_rows": {"choices": [40]}}}])
    study.write_text(yaml.safe_dump(written))
    result = cli("run", str(study))
    assert result.returncode == 0, result.stderr
    assert "data labels matched by name" in result.stdout and "BertForSequenceClassification" in result.stdout
    points = load_points(root / "run")
    assert {p.strategy for p in points} == {"dense", "random", "importance", "static_gates"}
    assert all(p.objectives["eval_split"].endswith("[dev 0.1, seed 0]") for p in points)
    result = cli("export", str(root / "run"), "--pick", "min-flops", "--seq-len", "16", "--repeats", "1")
    assert result.returncode == 0, result.stderr
    hf, tokenizer = load_transformers(root / "run" / "export")
    assert type(hf).__name__ == "BertForSequenceClassification"
    assert hf.config.id2label[0] == LABELS[0]
    chosen = HeadConfig.load(root / "run" / "export" / "head_config.json")
    assert chosen.total_kept < chosen.total_heads


def test_init_refuses_what_it_cannot_search(user_files, tmp_path, monkeypatch, capsys):
    root, model = user_files

    def init(*args):
        code, _, err = inprocess_cli(monkeypatch, capsys, tmp_path, "init", model, *args, "--out", tmp_path / "s.yaml")
        assert code == 2 and not (tmp_path / "s.yaml").exists() and len(err.strip().splitlines()) == 1, err
        return err

    write_reviews(tmp_path / "stars.csv", labels=("1 star", "5 stars"))
    assert "do not match the model's ['negative', 'positive', 'neutral']" in init("--data", tmp_path / "stars.csv")
    assert "column 'stars' is not in the file" in init("--data", root / "reviews.csv", "--label-column", "stars")
    (tmp_path / "dev.csv").write_text("id,text,sentiment\n0,a good film,positive\n")  # another header than train's
    err = init("--data", root / "reviews.csv", "--dev", tmp_path / "dev.csv")
    assert "column(s) ['review'] not in the header" in err and "give dev.csv the same header" in err


def test_gqa_model_searched_by_key_value_group(tmp_path):
    model = save_tiny_classifier("qwen2", tmp_path / "my-qwen")
    write_reviews(tmp_path / "train.csv", rows=60, seed=1)
    write_reviews(tmp_path / "dev.csv", rows=30, seed=2)
    config = load_study(_study(tmp_path, model, head_unit="kv_group",
                               strategies=[{"name": "random", "n_trials": 3}, {"name": "nas", "n_trials": 3}]))
    run_study(config, progress=False, echo=lambda *_: None)
    points = load_points(config.out_dir)
    assert len(points) == 6
    assert all(p.head_config["num_heads"] == 2 for p in points)  # 2 key/value groups per layer are the units


def test_a_strategy_that_cannot_run_on_the_model_fails_before_any_trial(tmp_path):
    model = save_tiny_classifier("llama", tmp_path / "m")  # 2 layers x 2 key/value groups searched as units
    write_reviews(tmp_path / "train.csv", rows=30)
    write_reviews(tmp_path / "dev.csv", rows=12, seed=3)
    config = load_study(_study(tmp_path, model, head_unit="kv_group", strategies=[{"name": "random", "n_trials": 1},
                                                                                  {"name": "cahp", "n_trials": 1}]))
    with pytest.raises(Exception, match="clustering needs at least 5 heads"):
        run_study(config, progress=False, echo=lambda *_: None)
    assert not (config.out_dir / "optuna.db").exists()


def test_labels_are_matched_to_the_model_order(tmp_path):
    model = save_tiny_classifier("roberta", tmp_path / "m")
    write_reviews(tmp_path / "train.csv", rows=30, labels=("neutral", "Positive", "NEGATIVE"))  # other order and case
    write_reviews(tmp_path / "dev.csv", rows=12, seed=3, labels=("neutral", "Positive", "NEGATIVE"))
    context, _ = build_context(load_study(_study(tmp_path, model, strategies=[{"name": "dense", "n_trials": 1}])),
                               progress=False)
    assert context.search.label_names == LABELS
    raw = [line.split(",")[2] for line in (tmp_path / "dev.csv").read_text().splitlines()[1:]]
    assert [LABELS[y] for y in context.search.labels] == [r.lower() for r in raw]
    ids = tmp_path / "ids.csv"
    ids.write_text("text,label\n" + "".join(f"good film {i},{i % 3}\n" for i in range(12)))
    context, _ = build_context(load_study(_study(tmp_path, model, strategies=[{"name": "dense", "n_trials": 1}],
                                                 train=ids, dev=ids, text_column="text", label_column="label",
                                                 output="run-ids")), progress=False)
    assert context.dense.meta["labels_matched"].startswith("by class id: 0 -> negative")


def _study(tmp_path, model, *, strategies, head_unit="query", output="run", **data) -> Path:
    files = data or {"train": tmp_path / "train.csv", "dev": tmp_path / "dev.csv", "text_column": "review",
                     "label_column": "sentiment"}
    study = {"name": "mine", "output": str(tmp_path / output), "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
             "data": {**{k: str(v) for k, v in files.items()}, "scoring_rows": 16},
             "model": {"source": str(model), "max_length": 16, "train": None, "head_unit": head_unit},
             "hardware": {"seq_len": 16, "repeats": 1}, "strategies": strategies}
    path = tmp_path / f"{output}.yaml"
    path.write_text(json.dumps(study))
    return path



@pytest.mark.slow
def test_train_and_export_the_builtin_encoder_on_a_users_file(user_files, tmp_path):
    root, _ = user_files
    out = tmp_path / "model"
    result = cli("train", "--data", str(root / "reviews.csv"), "--out", str(out), "--epochs", "1", "--layers", "2",
                 "--heads", "2", "--hidden", "16", "--ffn", "16", "--max-length", "16")
    assert result.returncode == 0, result.stderr
    assert "reviews[dev 0.1, seed 0]" in result.stdout
    heads = tmp_path / "heads.json"
    HeadConfig(((0,), (1,)), 2).save(heads)
    result = cli("export", str(out), "--heads", str(heads), "--out", str(tmp_path / "export"), "--no-onnx",
                 "--seq-len", "16", "--repeats", "1")  # the model card is measured on the dev split the model recorded
    assert result.returncode == 0, result.stderr
    assert "reviews[dev 0.1, seed 0]" in (tmp_path / "export" / "model_card.md").read_text()
    result = cli("train", "--data", str(tmp_path / "missing.csv"))
    assert result.returncode == 2 and "Data file not found" in result.stderr


@pytest.mark.parametrize(("data", "message"), [
    ({"dataset": "sst2", "train": "t.csv"}, "give either dataset (sst2) or your own files"),
    ({"dev": "d.csv"}, "the train file is missing"),
    ({"train": "t.csv", "file": "all.csv"}, "give either one file per split"),
    ({"train": "t.csv", "split": {"dev": 0.1}}, "`split` fractions divide one `file`"),
    ({"file": "all.csv", "split": {"valid": 0.1}}, "data.split.valid"),
    ({"dataset": "imdb"}, "must be one of"),
])
def test_data_sections_that_cannot_work_are_refused_when_read(tmp_path, data, message):
    from headsearch.errors import HeadsearchError

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "data": data, "strategies": [{"name": "dense"}]}))
    with pytest.raises(HeadsearchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_study(path)


def test_a_classifier_folder_is_not_trained(tmp_path, user_files):
    from headsearch.errors import HeadsearchError

    root, model = user_files
    study = json.loads(_study(tmp_path, model, strategies=[{"name": "dense", "n_trials": 1}],
                              train=root / "reviews.csv", dev=root / "reviews.csv", text_column="review",
                              label_column="sentiment").read_text())
    study["model"]["train"] = {"epochs": 1}
    path = tmp_path / "trained.yaml"
    path.write_text(json.dumps(study))
    with pytest.raises(HeadsearchError, match="fine-tuned classifier, searched as it is; remove model.train"):
        build_context(load_study(path), progress=False)

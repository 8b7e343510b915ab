"""The command line as a user runs it: train, price, export; bad input is one line and exit code 2."""

import json
import subprocess
import sys

import pytest
from inprocess import cli

from headsearch import HeadConfig
from headsearch.export import load

TINY = ["--train-rows", "300", "--epochs", "1", "--layers", "2", "--heads", "2", "--hidden", "16", "--ffn", "32",
        "--max-length", "16"]


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "headsearch", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "model"
    result = run("train", "--out", str(out), *TINY)
    assert result.returncode == 0, result.stderr
    assert "dev accuracy" in result.stdout and "MFLOPs per example" in result.stdout
    return out


def test_train_reuses_checkpoint(trained, tmp_path, monkeypatch, capsys):
    stamp = (trained / "model.safetensors").stat().st_mtime_ns
    code, _, err = cli(monkeypatch, capsys, tmp_path, "train", "--out", trained, *TINY)
    assert code == 0, err
    assert (trained / "model.safetensors").stat().st_mtime_ns == stamp


def test_cost_and_export(trained, tmp_path, monkeypatch, capsys):
    heads = tmp_path / "heads.json"
    HeadConfig(((0,), (1,)), num_heads=2).save(heads)
    code, out_text, err = cli(monkeypatch, capsys, tmp_path, "cost", trained, "--heads", heads, "--seq-len", "16",
                              "--repeats", "2")
    assert code == 0, err
    assert "FLOPs ratio" in out_text and "measured speedup" in out_text and '"threads": 1' in out_text
    out = tmp_path / "export"
    code, _, err = cli(monkeypatch, capsys, tmp_path, "export", trained, "--out", out, "--heads", heads, "--seq-len", "16",
                       "--repeats", "2", "--no-onnx")
    assert code == 0, err
    assert load(out).model.head_config == HeadConfig(((0,), (1,)), num_heads=2)
    card = (out / "model_card.md").read_text()
    assert "| accuracy |" in card and "| speedup |" in card and "synthetic/dev" in card


def test_head_config_that_does_not_fit(trained, tmp_path, monkeypatch, capsys):
    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps({"num_heads": 2, "kept": [[0], [1], [0]]}))
    code, _, err = cli(monkeypatch, capsys, tmp_path, "export", trained, "--out", "out", "--heads", heads, "--no-onnx")
    assert code == 2 and "has 3 layers but the model has 2" in err
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(tmp_path):
    result = run("run", "missing.yaml", "--debug", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr


@pytest.mark.slow
def test_run_show_compare_and_export_from_run(tmp_path):
    study = tmp_path / "tiny.yaml"
    study.write_text(json.dumps({
        "name": "cli-tiny", "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "data": {"dataset": "synthetic", "search_rows": 60, "scoring_rows": 32},
        "model": {"max_length": 16, "builtin": {"num_layers": 2, "num_heads": 2, "hidden_size": 16,
                                                "intermediate_size": 32}, "train": {"epochs": 1, "train_rows": 200}},
        "hardware": {"seq_len": 16, "repeats": 1},
        "strategies": [{"name": "dense", "n_trials": 1}, {"name": "importance", "n_trials": 3}],
    }))
    result = run("run", str(study), "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "per-strategy fronts" in result.stdout and "knee" in result.stdout
    for name in ("pareto.png", "pareto.html", "report.md", "run.json", "optuna.db", "study.yaml"):
        assert (tmp_path / "run" / name).is_file(), name
    assert "| importance | 3 |" in (tmp_path / "run" / "report.md").read_text()
    compared = run("compare", str(tmp_path / "run"))
    assert compared.returncode == 0 and "| dense | 1 |" in compared.stdout
    exported = run("export", str(tmp_path / "run"), "--pick", "min-flops", "--seq-len", "16", "--repeats", "2",
                   "--no-onnx")
    assert exported.returncode == 0, exported.stderr
    assert "Chosen: " in exported.stdout
    assert load(tmp_path / "run" / "export").model.head_config.total_kept <= 4
    trial = run("export", str(tmp_path / "run"), "--strategy", "importance", "--trial", "99", "--out",
                str(tmp_path / "e2"), "--no-onnx")
    assert trial.returncode == 2 and "No completed trial 99 of strategy 'importance'" in trial.stderr


def test_export_warns_when_the_written_model_is_slower_than_dense(trained, tmp_path, monkeypatch, capsys):
    """The latency measured on the written model (here made to read 0.9x dense) is said on stderr."""
    from dataclasses import replace

    from headsearch.objectives import Evaluator

    measured = Evaluator.evaluate_classifier
    monkeypatch.setattr(Evaluator, "evaluate_classifier", lambda self, clf: replace(measured(self, clf), speedup=0.9))
    heads = tmp_path / "heads.json"
    HeadConfig(((0,), (1,)), num_heads=2).save(heads)
    code, out, err = cli(monkeypatch, capsys, tmp_path, "export", trained, "--out", "out", "--heads", heads,
                         "--no-onnx", "--repeats", "1", "--seq-len", "16")
    assert code == 0, err
    assert "warning: the exported model measured 0.900x the speed of dense (slower)" in err


@pytest.mark.slow  # four ONNX exports: about 25 s
def test_export_priced_in_onnx_runtime_then_serve_checked(trained, tmp_path, monkeypatch, capsys):
    """The card's latency is timed in the runtime asked for, with realised/ideal; ``serve-check`` loads the export
    with transformers alone and ONNX Runtime: both score the dev split alike and are timed against dense."""
    heads = tmp_path / "heads.json"
    HeadConfig(((0,), ()), num_heads=2).save(heads)
    code, _, err = cli(monkeypatch, capsys, tmp_path, "export", trained, "--out", "export", "--heads", heads,
                       "--seq-len", "16", "--repeats", "2", "--runtime", "onnxruntime")
    assert code == 0, err
    card = (tmp_path / "export" / "model_card.md").read_text()
    assert '"runtime": "onnxruntime"' in card and "in onnxruntime (onnxruntime " in card and "realised / ideal" in card
    code, out, err = cli(monkeypatch, capsys, tmp_path, "serve-check", "export", "--dense", trained, "--seq-len", "16",
                         "--repeats", "2")
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("eager ", "onnxruntime "))}
    assert set(rows) == {"eager", "onnxruntime"}
    assert rows["eager"][1] == rows["onnxruntime"][1]  # the same accuracy: the same classes on every row
    assert "disagree on 0 of" in out
    code, _, err = cli(monkeypatch, capsys, tmp_path, "serve-check", "export", "--seq-len", "16", "--repeats", "2",
                       "--runtime", "eager")
    assert code == 2 and "--runtime" in err  # serve-check times both runtimes itself

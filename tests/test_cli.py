"""The command line as a user runs it: train, price, export; bad input is one line and exit code 2."""

import json
import subprocess
import sys

import pytest

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


def test_train_reuses_checkpoint(trained):
    stamp = (trained / "model.safetensors").stat().st_mtime_ns
    result = run("train", "--out", str(trained), *TINY)
    assert result.returncode == 0, result.stderr
    assert (trained / "model.safetensors").stat().st_mtime_ns == stamp


def test_cost_and_export(trained, tmp_path):
    heads = tmp_path / "heads.json"
    HeadConfig(((0,), (1,)), num_heads=2).save(heads)
    result = run("cost", str(trained), "--heads", str(heads), "--seq-len", "16", "--repeats", "2")
    assert result.returncode == 0, result.stderr
    assert "FLOPs ratio" in result.stdout and "measured speedup" in result.stdout and '"threads": 1' in result.stdout
    out = tmp_path / "export"
    result = run("export", str(trained), str(out), "--heads", str(heads), "--seq-len", "16", "--repeats", "2",
                 "--no-onnx")
    assert result.returncode == 0, result.stderr
    assert load(out).model.head_config == HeadConfig(((0,), (1,)), num_heads=2)
    card = (out / "model_card.md").read_text()
    assert "| accuracy |" in card and "| speedup |" in card and "negation(seed=2)" in card


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--dataset", "imdb"], "Unknown dataset 'imdb'"),
        (["train", "--dataset", "sst2", "--data-dir", "/nonexistent"], "Data folder for sst2 not found"),
        (["train", "--model", "/nonexistent", "--train-rows", "10"], "Model folder not found"),
        (["cost", "/nonexistent"], "not a headsearch model folder"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message, tmp_path):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_head_config_that_does_not_fit(trained, tmp_path):
    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps({"num_heads": 2, "kept": [[0], [1], [0]]}))
    result = run("export", str(trained), str(tmp_path / "out"), "--heads", str(heads), "--no-onnx")
    assert result.returncode == 2 and "has 3 layers but the model has 2" in result.stderr
    assert not (tmp_path / "out").exists()

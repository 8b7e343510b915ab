"""Bad input through the command line: one line naming the problem and the fix, exit code 2, nothing written,
and found before any training. Run in this process (``headsearch.cli.main``) to keep the suite quick."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from hf_models import save_tiny_classifier
from inprocess import cli
from tiny_study import write_study

from headsearch._fs import atomic_folder


@pytest.fixture()
def refused(monkeypatch, capsys, tmp_path):
    """Runs a command that must be refused: exit 2, one line on stderr holding ``message``, no file added or changed
    under ``tmp_path`` (inputs are written there first); returns the seconds it took."""
    def check(message: str, *args: str) -> float:
        before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
        started = time.perf_counter()
        code, _, err = cli(monkeypatch, capsys, tmp_path, *args)
        took = time.perf_counter() - started
        assert code == 2, err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before, "files were written"
        return took

    return check


@pytest.mark.parametrize(("args", "message"), [
    (["run", "study.yaml", "--n-trials", "-3"], "--n-trials must be at least 1 (got -3)"),
    (["run", "study.yaml", "--n-trials", "0"], "--n-trials must be at least 1 (got 0)"),
    (["worker", "study.yaml", "--storage", "journal:j.log", "--n-trials", "0"], "--n-trials must be at least 1"),
    (["run", "study.yaml", "--max-concurrent", "0", "--driver", "ray"], "--max-concurrent must be at least 1"),
    (["export", ".", "--strategy", "importance"], "--strategy and --trial go together"),
    (["export", ".", "--trial", "3"], "--strategy and --trial go together"),
    (["export", ".", "--pick", "knee", "--strategy", "random", "--trial", "1"], "give --pick or --strategy/--trial"),
    (["export", ".", "--max-accuracy-drop", "-0.1"], "--max-accuracy-drop must be >= 0"),
    (["cost", ".", "--repeats", "0"], "--repeats must be at least 1"),
    (["train", "--epochs", "0"], "--epochs must be at least 1"),
])
def test_bad_options(refused, tmp_path, args, message):
    write_study(tmp_path, [{"name": "dense", "n_trials": 1}])
    refused(message, *args)


@pytest.mark.parametrize(("args", "message"), [
    (["train", "--dataset", "imdb"], "Unknown dataset 'imdb'"),
    (["train", "--dataset", "sst2", "--data-dir", "/nonexistent"], "Data folder for sst2 not found"),
    (["train", "--model", "/nonexistent", "--train-rows", "10"], "Model folder not found"),
    (["cost", "/nonexistent"], "not a headsearch model folder"),
    (["run", "missing.yaml"], "Study file not found: missing.yaml"),
    (["show", "."], "not a headsearch run folder"),
    (["export", ".", "--pick", "knee"], "is not a run folder"),
])
def test_missing_inputs(refused, args, message):
    refused(message, *args)


@pytest.mark.parametrize(("early_stopping", "message"), [
    ({"rule": "hyperband"}, "early_stopping.rule"),
    ({"rule": "mo_asha", "eta": 1}, "early_stopping.eta"),
    ({"grace": 4, "max_t": 2}, "max_t >= grace"),
])
def test_bad_early_stopping_setting_is_one_line(refused, tmp_path, early_stopping, message):
    write_study(tmp_path, [{"name": "dense", "n_trials": 1}], early_stopping=early_stopping)
    refused(message, "run", "study.yaml")


def test_yaml_error_is_one_line(refused, tmp_path):
    (tmp_path / "tab.yaml").write_text("name: x\n\tstrategies: []\n")
    refused("tab.yaml: not valid YAML (found character '\\t' that cannot start any token at line 2, column 1)",
            "run", "tab.yaml")


def test_non_utf8_data_is_one_line(refused, tmp_path):
    (tmp_path / "bad.tsv").write_bytes(b"text\tlabel\nfine\t1\nbad \xff byte\t0\n")
    refused("bad.tsv", "train", "--data", "bad.tsv")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c.pop("hidden_size"), "config.json: no 'hidden_size'"),
    (lambda c: c.update(num_attention_heads=0), "num_attention_heads is 0; it must be a positive integer"),
    (lambda c: c.update(num_attention_heads=3), "hidden_size 32 is not a multiple of num_attention_heads 3"),
])
def test_broken_model_config_is_one_line(refused, tmp_path, edit, message):
    model = save_tiny_classifier("bert", tmp_path / "clf")
    config = json.loads((model / "config.json").read_text())
    edit(config)
    (model / "config.json").write_text(json.dumps(config))
    refused(message, "cost", "clf")
    (tmp_path / "data.csv").write_text("text,label\n" + "\n".join(f"a b {i},{i % 2}" for i in range(20)) + "\n")
    study = write_study(tmp_path, [{"name": "dense", "n_trials": 1}], model={"source": str(model), "train": None},
                        data={"file": "data.csv", "split": {"dev": 0.2}})
    refused(message, "run", study.name)


def test_bad_storage_fails_before_training(refused, tmp_path):
    write_study(tmp_path, [{"name": "dense", "n_trials": 1}], storage="journal:/nonexistent/folder/j.log")
    took = refused("journal", "run", "study.yaml")
    assert took < 20  # not after training the dense model (the test's model trains in about 10 s)
    write_study(tmp_path, [{"name": "dense", "n_trials": 1}], storage="nosuchdb://x")
    refused("Cannot open the Optuna storage", "run", "study.yaml")


@pytest.mark.parametrize(("split", "content", "message"), [
    ("dev", "text,label\n", "dev.csv: no rows"),
    ("test", "text,label\n", "test.csv: no rows"),
    ("dev", "text,label\nok,1\nbroken\n", "dev.csv:3"),
])
def test_bad_split_fails_before_training(refused, tmp_path, split, content, message):
    rows = "text,label\n" + "\n".join(f"w{i} x,{i % 2}" for i in range(40)) + "\n"
    for name in ("train", "dev", "test"):
        (tmp_path / f"{name}.csv").write_text(content if name == split else rows)
    write_study(tmp_path, [{"name": "dense", "n_trials": 1}],
                data={"train": "train.csv", "dev": "dev.csv", "test": "test.csv"})
    refused(message, "run", "study.yaml")


def test_plain_rerun_of_a_run_folder_is_refused_before_loading(refused, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "study.yaml").write_text("name: tiny\n")  # a run that was killed before it wrote run.json
    write_study(tmp_path, [{"name": "dense", "n_trials": 1}])
    refused("already holds a run; pass --resume", "run", "study.yaml")
    assert not (tmp_path / "mlflow.db").exists()  # no FAILED parent run either


def test_stale_temporary_folder_of_a_killed_write_is_removed(tmp_path):
    target = tmp_path / "export"
    dead = os.fork()
    if dead == 0:  # a child that dies at once: its pid names a process that is gone
        os._exit(0)
    os.waitpid(dead, 0)
    stale, live = tmp_path / f".export.{dead}.abc", tmp_path / f".export.{os.getppid()}.abc"
    stale.mkdir()
    live.mkdir()
    with atomic_folder(target) as tmp:
        (tmp / "f").write_text("x")
    assert (target / "f").is_file() and not stale.exists() and live.exists()  # a live writer's folder stays
    assert {p.name for p in tmp_path.iterdir()} == {"export", live.name}


def test_cost_of_an_export_folder(monkeypatch, capsys, tmp_path):
    from headsearch import HeadConfig
    from headsearch.cli import _open_model
    from headsearch.export import export

    model = save_tiny_classifier("bert", tmp_path / "clf")
    export(_open_model(model, max_length=16), tmp_path / "exp", head_config=HeadConfig(((0, 1), (2,)), num_heads=4),
           onnx=False)
    code, out, err = cli(monkeypatch, capsys, tmp_path, "cost", "exp", "--seq-len", "16", "--repeats", "2")
    assert code == 0, err
    assert "folder" in out and "measured speedup" not in out
    (tmp_path / "fewer.json").write_text(json.dumps({"num_heads": 4, "kept": [[0], [2]]}))
    code, out, err = cli(monkeypatch, capsys, tmp_path, "cost", "exp", "--heads", "fewer.json", "--seq-len", "16",
                         "--repeats", "2")
    assert code == 0, err
    assert "measured speedup of config over folder" in out


# -- the inputs and faults a probe of users' cases found (issue 29): one line, exit 2, nothing written -----------
@pytest.fixture()
def user_study(tmp_path):
    """A user's tiny BERT classifier folder and CSV, and a study of them whose run folder is ``tmp_path/run``."""
    model = save_tiny_classifier("bert", tmp_path / "clf")
    (tmp_path / "data.csv").write_text("text,label\n" + "\n".join(
        f"the movie {'good' if i % 2 else 'bad'} {i},{'positive' if i % 2 else 'negative'}" for i in range(30)) + "\n")
    write_study(tmp_path, [{"name": "dense", "n_trials": 1}], model={"source": str(model), "train": None},
                data={"file": "data.csv", "split": {"dev": 0.2}})
    return model


def test_an_excel_csv_with_a_byte_order_mark_is_data(monkeypatch, capsys, tmp_path, user_study):
    """Excel's "CSV UTF-8" starts with a byte-order mark: init detects the columns by their names, run reads it."""
    rows = (tmp_path / "data.csv").read_text()
    (tmp_path / "excel.csv").write_bytes("\ufeff".encode() + rows.replace("\n", "\r\n").encode())
    code, out, err = cli(monkeypatch, capsys, tmp_path, "init", "clf", "--data", "excel.csv", "--out", "excel.yaml")
    assert code == 0, err
    study = (tmp_path / "excel.yaml").read_text()
    assert "text_column: text\n" in study and "label_column: label\n" in study and "\ufeff" not in study


@pytest.mark.parametrize("command", ["init", "run"])
def test_a_plain_folder_as_data_is_one_line(refused, tmp_path, user_study, command):
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.csv").write_text((tmp_path / "data.csv").read_text())
    if command == "init":
        refused("splits: a folder, but not one written by `datasets` save_to_disk", "init", "clf", "--data", "splits")
    else:
        write_study(tmp_path, [{"name": "dense", "n_trials": 1}], model={"source": str(user_study), "train": None},
                    data={"file": "splits", "split": {"dev": 0.2}})
        refused("it holds train.csv: give a file", "run", "study.yaml")


@pytest.mark.parametrize(("damage", "message"), [
    (lambda w: w.write_bytes(w.read_bytes()[: w.stat().st_size // 2]), "model.safetensors: cut short or corrupted"),
    (lambda w: w.unlink(), "clf: no weights (model.safetensors"),
])
def test_a_broken_weight_file_is_refused_before_anything_is_written(refused, monkeypatch, capsys, tmp_path, user_study,
                                                                    damage, message):
    weights = user_study / "model.safetensors"
    whole = weights.read_bytes()
    damage(weights)
    refused(message, "run", "study.yaml")
    refused(message, "init", "clf", "--data", "data.csv")
    if "no weights" in message:  # restored: the same command runs, nothing left over says "already holds a run"
        weights.write_bytes(whole)
        code, _, err = cli(monkeypatch, capsys, tmp_path, "run", "study.yaml")
        assert code == 0, err


def test_a_failed_start_removes_the_run_folder_it_made(monkeypatch, capsys, tmp_path, user_study):
    """A disk that fills while the user's model is copied into the run folder: safetensors' own error becomes one
    line naming the folder, and the run folder (study.yaml written before the copy) is gone."""
    from safetensors import SafetensorError

    def full_disk(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("safetensors.torch.save_model", full_disk)
    code, _, err = cli(monkeypatch, capsys, tmp_path, "run", "study.yaml")
    assert code == 2 and _one_error_line(err).startswith("error: cannot write") and "No space left on device" in err, err
    assert not (tmp_path / "run").exists()


@pytest.fixture()
def small_disk(tmp_path):
    """A 64 KiB file system (tmpfs) at ``tmp_path/disk``: a run folder's study.yaml fits, a model copy does not.
    Mounting needs root (CI and these machines run as root); elsewhere the test skips."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip() or 'not root'})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_during_the_model_copy_is_one_line_and_leaves_nothing(monkeypatch, capsys, tmp_path, user_study,
                                                                         small_disk):
    code, _, err = cli(monkeypatch, capsys, tmp_path, "run", "study.yaml", "--out", str(small_disk / "run"))
    assert code == 2 and _one_error_line(err).startswith("error: cannot write") and "No space left on device" in err, err
    assert list(small_disk.iterdir()) == []


def _one_error_line(err: str) -> str:
    """The error line of a run that failed after loading the model (transformers' loading bar comes before it)."""
    lines = err.replace("\r", "\n").strip().splitlines()
    assert sum(line.startswith("error:") for line in lines) == 1 and lines[-1].startswith("error:"), err
    return lines[-1]


def test_per_input_budgets_outside_eager_are_refused_before_training(refused, tmp_path):
    write_study(tmp_path, [{"name": "budgetformer", "n_trials": 1}], hardware={"runtime": "onnxruntime"})
    refused("budgetformer: per-input head budgets run in eager PyTorch only", "run", "study.yaml")
    write_study(tmp_path, [{"name": "dense", "n_trials": 1}], hardware={"runtime": "tensorrt"})
    refused("runtime", "run", "study.yaml")

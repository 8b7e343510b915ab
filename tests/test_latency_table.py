"""The latency table: what it times is what the pruned model runs, its fit and interpolation, and a study
that predicts latency from it (checked against measurement on a sample of trials). No timing is asserted."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from floats import assert_close
from hf_models import save_tiny_classifier
from tiny_study import write_study

from headsearch import study as study_module
from headsearch.cost import HardwareProfile
from headsearch.cost.latency_table import LatencyTable, _fit, head_grid, measure_table
from headsearch.cost.table_cache import ENV
from headsearch.errors import HeadsearchError, ModelError
from headsearch.heads import HeadConfig
from headsearch.study import TABLE_FILE, load_points, run_study
from headsearch.study_config import load_study
from headsearch.testing import tiny_context

PROFILE = HardwareProfile(threads=1, batch_size=2, seq_len=8)


@pytest.fixture(scope="module")
def model():
    return tiny_context(trained=True, layers=2, heads=4).dense.model


@pytest.mark.parametrize("family", ["bert", "llama", "deberta-v2"])
def test_a_timed_entry_computes_the_pruned_models_layer(family, tmp_path):
    """Entry (layer l, k heads) runs exactly layer l of the model pruned to k heads there, called with what the
    family's layer loop passes it (masks with padding, rotary tables, relative positions)."""
    from headsearch.models.hf.user_model import open_classifier

    model = open_classifier(save_tiny_classifier(family, tmp_path), max_length=16).model
    ids = torch.randint(6, 20, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.inference_mode():
        for layer in range(model.num_layers):
            for k in range(model.num_heads + 1):
                counts = [model.num_heads] * model.num_layers
                counts[layer] = k
                pruned = model.prune(HeadConfig(tuple(tuple(range(c)) for c in counts), model.num_heads))
                args, kwargs = pruned.layer_inputs(ids, mask)[layer]
                expected = pruned._layers()[layer](*args, **kwargs)
                got = model.layer_cut(layer, tuple(range(k)))(*args, **kwargs)
                expected, got = (x[0] if isinstance(x, tuple) else x for x in (expected, got))
                assert_close(got, expected)  # the same layer from tensors of another layout: equal up to rounding


def test_grid_fit_and_interpolation():
    assert head_grid(4) == (0, 1, 2, 3, 4)
    wide = head_grid(32)
    assert wide[0] == 0 and wide[-1] == 32 and len(wide) <= 13 and list(wide) == sorted(set(wide))
    # the k >= 1 entries become their least-squares line; k = 0 keeps its own figure
    assert _fit((0, 1, 2, 3), [5.0, 2.0, 3.0, 4.0]) == pytest.approx((5.0, 2.0, 3.0, 4.0))
    assert _fit((0, 1, 2, 3), [0.5, 1.0, 3.0, 2.0]) == pytest.approx((0.5, 1.5, 2.0, 2.5))
    table = LatencyTable({}, 8, (0, 4, 8), ((1.0, 2.0, 4.0), (1.0, 3.0, 5.0)), 0.5)
    config = HeadConfig(((0, 1), tuple(range(6))), 8)  # 2 heads in layer 0, 6 in layer 1: between grid points
    assert table.predict(config) == pytest.approx(0.5 + 1.5 + 4.0)
    assert LatencyTable.from_dict(json.loads(json.dumps(table.to_dict()))) == table
    with pytest.raises(ModelError, match="2 layers x 8 heads"):
        table.predict(HeadConfig.dense(3, 8))


def test_measured_table_has_an_entry_per_layer_and_head_count(model):
    table = measure_table(model, PROFILE, repeats=1, warmup=1, min_run_s=0.001)
    assert table.grid == (0, 1, 2, 3, 4) and len(table.layer_ms) == model.num_layers
    assert all(t > 0 for row in table.layer_ms for t in row) and table.profile == PROFILE.to_dict()
    with pytest.raises(ModelError, match="already pruned"):
        measure_table(model.prune(HeadConfig(((0,), (0, 1)), 4)), PROFILE)


@pytest.mark.slow
def test_study_predicts_latency_from_the_table_and_checks_a_sample(tmp_path):
    hardware = {"seq_len": 16, "repeats": 1, "latency": "table", "table_check_every": 2}
    config = load_study(write_study(tmp_path, [{"name": "random", "n_trials": 5}], hardware=hardware))
    out = run_study(config, progress=False, echo=lambda *_: None)
    saved = json.loads((out / TABLE_FILE).read_text())
    points = load_points(out)
    assert len(points) == 5 and all(p.objectives["latency_source"] == "table" for p in points)
    table = LatencyTable.from_dict(saved)
    for p in points:
        assert p.objectives["latency_ms"] == pytest.approx(table.predict(HeadConfig.from_dict(p.head_config)))
    # distinct configurations are evaluated in turn; the 1st, 3rd, ... of them are also measured
    assert sum(1 for p in points if p.objectives["checked_latency_ratio"]) >= 1
    check = json.loads((out / "run.json").read_text())["latency_table_check"]
    assert check["checked_trials"] >= 1 and check["median_relative_error"] >= 0
    shown = subprocess.run([sys.executable, "-m", "headsearch", "show", str(out)], capture_output=True, text=True)
    assert shown.returncode == 0 and f"over {check['checked_trials']} trial(s) also measured" in " ".join(shown.stdout.split())
    before = (out / TABLE_FILE).stat().st_mtime_ns
    run_study(config, n_trials=6, resume=True, progress=False, echo=lambda *_: None)
    assert (out / TABLE_FILE).stat().st_mtime_ns == before  # measured once per profile, then read
    measured = load_study(write_study(tmp_path, [{"name": "random", "n_trials": 7}],
                                      hardware={"seq_len": 16, "repeats": 1}))
    with pytest.raises(HeadsearchError, match="latency 'table' -> None"):
        run_study(measured, resume=True, progress=False, echo=lambda *_: None)  # never one front for both


@pytest.mark.parametrize("family", ["llama", "distilbert"])
def test_every_family_gets_a_table_layer_by_layer(family, tmp_path):
    """Every entry runs on the family's own layers (layers keeping no head included)."""
    from headsearch.models.hf.user_model import open_classifier

    clf = open_classifier(save_tiny_classifier(family, tmp_path / family), max_length=16)
    table = measure_table(clf.model, PROFILE, repeats=1, warmup=1, min_run_s=0.0)
    assert len(table.layer_ms) == 2 and table.grid == (0, 1, 2, 3, 4)
    assert all(map(math.isfinite, [table.rest_ms, *table.layer_ms[0]]))


def test_a_study_on_a_users_transformers_model_prices_latency_from_its_table(tmp_path, monkeypatch):
    """Latency from a table measured on the user's model, measured once and read by a second study."""
    model = save_tiny_classifier("bert", tmp_path / "clf")
    rows = [{"text": t, "label": lab} for t, lab in [("good film", "positive"), ("bad plot", "negative"),
                                                     ("not good", "negative"), ("great actor", "positive")] * 10]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    study = write_study(tmp_path, [{"name": "random", "n_trials": 4}],
                        data={"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "train.jsonl"),
                              "scoring_rows": 16},
                        model={"source": str(model), "max_length": 16, "train": None},
                        hardware={"seq_len": 16, "repeats": 1, "latency": "table", "table_check_every": 2})
    timed = []
    monkeypatch.setattr(study_module, "measure_table", lambda *a, **k: timed.append(a) or measure_table(*a, **k))
    monkeypatch.setenv(ENV, str(tmp_path / "cache"))
    out = run_study(load_study(study), progress=False, echo=lambda *_: None)
    saved = json.loads((out / TABLE_FILE).read_text())
    assert saved["shape"]["class"] == "TransformersClassifier" and len(timed) == 1
    second = run_study(load_study(study, output=tmp_path / "second"), progress=False, echo=lambda *_: None)
    assert len(timed) == 1  # another study of the same model shape on this machine and profile: from the cache
    assert json.loads((second / TABLE_FILE).read_text()) == saved
    table = LatencyTable.from_dict(saved)
    points = load_points(out)
    assert points and all(p.objectives["latency_source"] == "table" for p in points)
    for p in points:
        assert p.objectives["latency_ms"] == pytest.approx(table.predict(HeadConfig.from_dict(p.head_config)))


@pytest.mark.slow
def test_a_study_times_latency_in_onnx_runtime(tmp_path):
    """hardware.runtime: onnxruntime: the table is fitted on whole ONNX models, the sampled checks are timed in ONNX
    Runtime too, and the run records the runtime with its figures."""
    hardware = {"seq_len": 16, "repeats": 1, "latency": "table", "table_check_every": 2, "runtime": "onnxruntime"}
    config = load_study(write_study(tmp_path, [{"name": "random", "n_trials": 3}], hardware=hardware))
    out = run_study(config, progress=False, echo=lambda *_: None)
    table = LatencyTable.from_dict(json.loads((out / TABLE_FILE).read_text()))
    assert table.profile["runtime"] == "onnxruntime" and table.profile["runtime_version"].startswith("onnxruntime ")
    info = json.loads((out / "run.json").read_text())
    assert info["profile"]["runtime"] == "onnxruntime" and info["latency_table_check"]["checked_trials"] >= 1
    points = load_points(out)
    assert len(points) == 3 and all(p.objectives["latency_source"] == "table" for p in points)

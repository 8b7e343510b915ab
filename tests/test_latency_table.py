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
from headsearch.cost.latency_table import (
    LatencyTable,
    _fit,
    _Layer,
    fit_table,
    head_grid,
    measure_table,
    table_configs,
    whole_model_table,
)
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


def test_a_timed_entry_computes_the_pruned_models_layer(model):
    """Entry (layer l, k heads) runs exactly layer l of the model pruned to k heads there."""
    torch.manual_seed(0)
    states = torch.randn(2, 16, model.spec.hidden_size)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0
    bias = model.mask_bias(mask, states.dtype)
    for layer in range(model.num_layers):
        for k in range(model.num_heads + 1):
            counts = [model.num_heads] * model.num_layers
            counts[layer] = k
            pruned = model.prune(HeadConfig(tuple(tuple(range(c)) for c in counts), model.num_heads))
            with torch.inference_mode():
                expected = pruned.layers[layer](states, bias, None)
                got = _Layer(model.layers[layer], k, bias)(states)
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


def test_whole_model_configurations_separate_heads_from_empty_layers():
    counts = [c.counts for c in table_configs(6, 12)]
    assert counts[:11] == [(k,) * 6 for k in range(1, 12)]  # every layer at k heads
    assert counts[11:] == [(0, 12, 12, 12, 12, 12), (0, 0, 0, 12, 12, 12), (0, 0, 0, 0, 0, 12)]
    assert [c.counts for c in table_configs(1, 2)] == [(1,)]


def test_the_whole_model_fit_recovers_a_linear_cost():
    """Times made by rest + b * heads + d * empty layers are fitted back, and the table predicts configurations it
    never timed."""
    def cost(config: HeadConfig) -> float:
        return 3.0 + 0.25 * config.total_kept - 0.4 * sum(k == 0 for k in config.counts)

    configs = [HeadConfig.dense(4, 8), *table_configs(4, 8)]
    table = whole_model_table(configs, [cost(c) for c in configs], PROFILE)
    for unseen in (HeadConfig(((0, 5), (), (1, 2, 3), (7,)), 8), HeadConfig(((0,), (1,), (2,), (3,)), 8)):
        assert table.predict(unseen) == pytest.approx(cost(unseen), rel=1e-9)  # exact up to float rounding


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_a_transformers_model_gets_a_table_from_whole_forward_passes(family, tmp_path):
    """Every configuration it times runs on the family's model (layers keeping no head included), and the
    table has an entry for every layer and head count."""
    from headsearch.models.hf.user_model import open_classifier

    clf = open_classifier(save_tiny_classifier(family, tmp_path / family), max_length=16)
    table = fit_table(clf.model, PROFILE, repeats=1, warmup=1, min_run_s=0.0)
    assert len(table.layer_ms) == 2 and table.grid == (0, 1, 2, 3, 4)
    assert all(map(math.isfinite, [table.rest_ms, *table.layer_ms[0]]))
    with pytest.raises(ModelError, match="already pruned"):
        fit_table(clf.model.prune(HeadConfig(((0,), (1, 2)), 4)), PROFILE)


def test_a_study_on_a_users_transformers_model_prices_latency_from_its_table(tmp_path, monkeypatch):
    """Latency from a table fitted on the user's model, measured once and read by a second study."""
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
    monkeypatch.setattr(study_module, "fit_table", lambda *a, **k: timed.append(a) or fit_table(*a, **k))
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

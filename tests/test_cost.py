"""Analytic cost against torch's own counters; latency records its profile (no timing is asserted)."""

import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from headsearch import HeadConfig
from headsearch.cost import HardwareProfile, activation_bytes, count_flops, measure_latency, measure_speedup
from headsearch.errors import ModelError


def counted_flops(model, seq_len: int) -> int:
    ids = torch.randint(2, model.shape.vocab_size, (1, seq_len))
    # eager attention inside the block (fused kernels hide their products from the counter)
    with model.record_heads(attention=True), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(ids, torch.ones_like(ids))
    return counter.get_total_flops()


def configs(model):
    rng = random.Random(0)
    dense = HeadConfig.dense(model.num_layers, model.num_heads)
    out = [dense, HeadConfig(((),) * model.num_layers, model.num_heads)]
    for _ in range(3):
        out.append(HeadConfig(tuple(tuple(rng.sample(range(model.num_heads), rng.randint(0, model.num_heads)))
                                    for _ in range(model.num_layers)), model.num_heads))
    return out


def test_flops_match_flop_counter(any_model):
    model = any_model.model
    for config in configs(model):
        analytic = count_flops(model.shape, config, seq_len=16).total
        measured = counted_flops(model.prune(config), 16)
        assert analytic == pytest.approx(measured, rel=0.02)


@pytest.mark.slow
def test_flops_match_flop_counter_minilm(minilm_clf):
    model = minilm_clf.model
    for config in configs(model)[:3]:
        analytic = count_flops(model.shape, config, seq_len=64).total
        assert analytic == pytest.approx(counted_flops(model.prune(config), 64), rel=0.02)


def test_flop_breakdown_scales_with_heads(tiny_builtin):
    spec = tiny_builtin.model.shape
    dense = count_flops(spec, HeadConfig.dense(spec.num_layers, spec.num_heads), 16)
    half = count_flops(spec, HeadConfig(tuple((0, 1) for _ in range(spec.num_layers)), spec.num_heads), 16)
    assert half.attention * 2 == dense.attention  # attention is linear in heads kept
    assert half.ffn == dense.ffn and half.classifier == dense.classifier
    # the s^2 terms are there: 2*s*s*a for scores and for values, per layer
    assert dense.attention_scores == dense.attention_values == spec.num_layers * 2 * 16 * 16 * spec.hidden_size


def test_activation_memory_shrinks_with_heads(tiny_builtin):
    spec = tiny_builtin.model.shape
    dense = activation_bytes(spec, HeadConfig.dense(spec.num_layers, spec.num_heads), 16, batch_size=2)
    one = activation_bytes(spec, HeadConfig(((0,),) * spec.num_layers, spec.num_heads), 16, batch_size=2)
    assert 0 < one < dense
    assert activation_bytes(spec, HeadConfig.dense(spec.num_layers, spec.num_heads), 16, batch_size=4) == 2 * dense


def test_profile_records_the_machine():
    p = HardwareProfile(threads=1, batch_size=2, seq_len=8)
    d = p.to_dict()
    assert d["cpu"] and d["torch_version"] == torch.__version__
    assert {"device", "threads", "batch_size", "seq_len", "cpu", "torch_version", "runtime", "runtime_version"} <= set(d)
    assert d["runtime"] == "eager" and d["runtime_version"] == f"torch {torch.__version__}"
    assert HardwareProfile(runtime="onnxruntime").runtime_version.startswith("onnxruntime ")
    with pytest.raises(ModelError, match="'threads' parameter of HardwareProfile"):
        HardwareProfile(threads=0)
    with pytest.raises(ModelError, match="runtime must be one of"):
        HardwareProfile(runtime="tensorrt")


def test_a_routed_model_is_timed_in_eager_only():
    from test_routing import _routed

    from headsearch.cost.runtime import runnable

    clf, _, _ = _routed()
    with pytest.raises(ModelError, match="run in eager PyTorch only"):
        runnable(clf.runtime, "onnxruntime")


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnxruntime", "compile"])
def test_every_runtime_runs_the_same_model(runtime, tiny_builtin):
    """A pruned model in another runtime computes the eager logits (up to the runtime's own kernels' rounding:
    ONNX Runtime and Inductor fuse and reorder float32 sums, 1e-4 here), is built once per model, and is timed."""
    from headsearch.cost.latency_table import measure_table
    from headsearch.cost.runtime import runnable

    model = tiny_builtin.model
    pruned = model.prune(HeadConfig(((0, 2), (), (1,)), model.num_heads))
    ids, mask = tiny_builtin.encode(["the film was not good", "great", "a very long and boring plot"])
    run = runnable(pruned, runtime)
    assert runnable(pruned, runtime) is run
    with torch.inference_mode():
        got = run(ids, mask)
        eager = pruned(ids, mask)
    torch.testing.assert_close(got, eager, rtol=1e-4, atol=1e-4)
    profile = HardwareProfile(runtime=runtime, batch_size=2, seq_len=8)
    result = measure_speedup(model, pruned, profile, repeats=2, warmup=1, min_run_s=0.001)
    assert result.dense.profile.runtime == runtime and result.speedup > 0
    if runtime == "onnxruntime":  # whole models fitted: one row for every layer, an empty layer costs nothing
        table = measure_table(model, profile, repeats=2, warmup=1, min_run_s=0.001)
        assert len(set(table.layer_ms)) == 1 and table.layer_ms[0][0] == 0.0
        assert table.predict(HeadConfig.dense(model.num_layers, model.num_heads)) > 0


def test_latency_and_speedup_are_measured(tiny_builtin):
    model = tiny_builtin.model
    profile = HardwareProfile(threads=1, batch_size=2, seq_len=8)
    lat = measure_latency(model, profile, repeats=3, warmup=1, min_run_s=0.001)
    assert lat.median_ms > 0 and len(lat.samples_ms) == 3 and lat.profile == profile
    pruned = model.prune(HeadConfig(((0,),) * model.num_layers, model.num_heads))
    result = measure_speedup(model, pruned, profile, repeats=4, warmup=1, min_run_s=0.001)
    assert len(result.pair_ratios) == 4
    assert result.speedup == pytest.approx(result.dense.median_ms / result.pruned.median_ms)
    with pytest.raises(ModelError, match="exceeds the model's 16 positions"):
        measure_latency(model, HardwareProfile(seq_len=64), repeats=1)


def test_latency_is_measured_once_per_layout(timed_configs, tiny_builtin, tiny_task):
    """Configurations with the same heads per layer (other heads) are priced by one interleaved measurement, in
    evaluation and in a trial's running cost; another count vector is measured."""
    from headsearch.objectives import Evaluator

    measured = timed_configs
    evaluator = Evaluator(tiny_builtin, tiny_task, HardwareProfile(threads=1, batch_size=1, seq_len=16), repeats=1)
    a, b = HeadConfig(((0, 1), (2,), (0, 1, 2, 3)), 4), HeadConfig(((2, 3), (0,), (0, 1, 2, 3)), 4)
    first, second = evaluator.evaluate(a), evaluator.evaluate(b)
    assert measured == [a] and (second.latency_ms, second.dense_latency_ms) == (first.latency_ms, first.dense_latency_ms)
    assert evaluator.cost_ratio(HeadConfig(((1, 3), (1,), (0, 1, 2, 3)), 4), latency=True) == \
        first.latency_ms / first.dense_latency_ms and len(measured) == 1
    other = HeadConfig(((0,), (2, 3), (0, 1, 2, 3)), 4)
    evaluator.evaluate(other)
    assert measured == [a, other]

"""The per-input routing runtime: exact against the masked forward, dense at s = 1, trainable, saved and exported."""

from __future__ import annotations

import functools

import pytest
import torch

from headsearch.cost import HardwareProfile
from headsearch.errors import ExportError, ModelError
from headsearch.export import export, load
from headsearch.models import accuracy
from headsearch.models.hf.surgery import get_module
from headsearch.models.routing import HeadRouter, RoutedClassifier, RouterSpec, RouterTraining
from headsearch.models.text_classifier import TextClassifier
from headsearch.objectives import Evaluator
from headsearch.testing import tiny_context


@functools.cache
def _context():
    return tiny_context(0, layers=3, heads=4, trained=True)  # heads matter in a trained model


# seed 2: routers whose choices and budgets differ between the rows in all four modes (the tests check it)
def _routed(per_layer: bool = True, seed: int = 2, **settings) -> tuple[TextClassifier, torch.Tensor, torch.Tensor]:
    context = _context()
    clf = context.dense.prune(context.dense.model.head_config)  # a copy
    torch.manual_seed(seed)
    router = HeadRouter(RouterSpec.for_model(clf.model.shape, per_layer=per_layer, **settings))
    for p in router.parameters():  # spread the scores so that examples choose different heads and budgets
        torch.nn.init.normal_(p, std=0.5)
    router.eval()
    clf.router = router
    ids, mask = clf.encode(list(context.search.texts[:24]))  # rows of different lengths: padding inside the batch
    return clf, ids, mask


@pytest.mark.parametrize("signal", ["tokens", "mean"])
@pytest.mark.parametrize("per_layer", [True, False])
def test_runtime_equals_masked_forward(per_layer: bool, signal: str) -> None:
    clf, ids, mask = _routed(per_layer, signal=signal)
    with torch.inference_mode(), clf.router.tracing() as trace:
        runtime = clf.runtime(ids, mask)
        masked = clf.model(ids, mask, gates=clf.router)
    kept = trace.kept()
    groups = [len({tuple(row) for row in kept[: len(ids), i].int().tolist()}) for i in range(kept.shape[1])]
    assert max(groups) > 1, groups  # the batch really was split into groups
    assert kept[: len(ids)].sum(-1).unique().numel() > 1  # and budgets differ between inputs
    torch.testing.assert_close(runtime, masked, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(runtime, clf.model(ids, mask), atol=1e-3)  # routing changed the result


@pytest.mark.parametrize("budget", [0.25, 0.5, 0.75])
def test_forced_budget_runtime_equals_masked_forward(budget: float) -> None:
    clf, ids, mask = _routed()
    with torch.inference_mode(), clf.router.forcing(budget), clf.router.tracing() as trace:
        runtime = clf.runtime(ids, mask)
        masked = clf.model(ids, mask, gates=clf.router)
    assert set(trace.kept()[: len(ids)].sum(-1).flatten().tolist()) == {round(budget * 4)}
    torch.testing.assert_close(runtime, masked, rtol=1e-5, atol=1e-5)


def test_accuracy_of_a_routed_model_is_its_runtimes() -> None:
    clf, _, _ = _routed()
    data = _context().search
    labels = torch.tensor(data.labels)
    with clf.router.forcing(0.25):
        routed = float((clf.logits(list(data.texts)).argmax(-1) == labels).float().mean())
        assert accuracy(clf, data) == pytest.approx(routed)
    unrouted = float((clf.model(*clf.encode(list(data.texts))).argmax(-1) == labels).float().mean())
    assert routed != pytest.approx(unrouted)  # the check can tell the two apart
    with pytest.raises(ModelError, match="takes no gates"):
        accuracy(clf, data, gates=torch.ones(3, 4))


def test_forced_budget_one_reproduces_dense_logits() -> None:
    clf, ids, mask = _routed()
    with torch.inference_mode(), clf.router.forcing(1.0):
        torch.testing.assert_close(clf.runtime(ids, mask), clf.model(ids, mask), rtol=1e-5, atol=1e-5)


def test_cached_heads_follow_weight_updates() -> None:
    clf, ids, mask = _routed()
    with torch.inference_mode():
        before = clf.runtime(ids, mask)
    with torch.no_grad():
        for layer in clf.model._layers():
            get_module(layer, clf.model.family.value).weight.mul_(1.5)  # an in-place update, as an optimiser step makes
    with torch.inference_mode():
        after = clf.runtime(ids, mask)
        torch.testing.assert_close(after, clf.model(ids, mask, gates=clf.router), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("per_layer", [True, False])
def test_straight_through_gradients_reach_controller_and_scorer(per_layer: bool) -> None:
    clf, ids, mask = _routed(per_layer)
    router = clf.router
    training = RouterTraining(router, entropy_weight=0.01)
    gates = training.draw(0.0)
    loss = clf.model(ids, mask, gates=gates).logsumexp(-1).mean() + training.penalty()
    loss.backward()
    w = router.spec.width
    for i, (projection, out) in enumerate(zip(router.projections, router.budget_outputs, strict=True)):
        grad = projection.weight.grad
        assert grad is not None and grad[:w].abs().sum() > 0 and grad[w:].abs().sum() > 0, i  # controller, scorer
        assert out.weight.grad is not None and out.weight.grad.abs().sum() > 0, i
    assert len(router.projections) == (3 if per_layer else 1)


def _batch_s(router: HeadRouter, value: float) -> None:
    """Make the router's next training terms a batch whose every budget is ``value``."""
    router._terms.append((torch.full((8,), value), torch.full((8, 4), 0.25)))


def test_multiplier_holds_the_mean_budget_at_the_target() -> None:
    router = HeadRouter(RouterSpec(hidden_size=8, num_layers=1, num_heads=4))
    training = RouterTraining(router, target_budget=0.4, multiplier_lr=0.1, quadratic=0.0, entropy_weight=0.0)
    _batch_s(router, 0.6)
    assert float(training.penalty()) == pytest.approx(0.0)  # the multiplier starts at 0
    assert training.multiplier == pytest.approx(0.02)  # raised while the mean is above the target
    _batch_s(router, 0.6)
    assert float(training.penalty()) == pytest.approx(0.02 * 0.2)
    for _ in range(3):
        _batch_s(router, 0.2)
        training.penalty()
    assert training.multiplier == pytest.approx(0.04 - 0.06)  # and lowered, below 0, while it is under
    quadratic = RouterTraining(router, target_budget=0.4, quadratic=5.0, entropy_weight=0.0)
    _batch_s(router, 0.6)
    assert float(quadratic.penalty()) == pytest.approx(0.5 * 5.0 * 0.2 ** 2)


def test_epoch_statistics_flag_a_collapsed_budget() -> None:
    router = HeadRouter(RouterSpec(hidden_size=8, num_layers=1, num_heads=4, s_min=0.1, s_max=0.9))
    training = RouterTraining(router, target_budget=0.5)
    for value in (0.1, 0.1, 0.1005):
        _batch_s(router, value)
        training.penalty()
    stats = training.end_epoch()
    assert stats.at_min == 1.0 and stats.at_max == 0.0 and stats.collapse() == "collapsed to s_min"
    _batch_s(router, 0.9)
    _batch_s(router, 0.3)
    training.penalty()
    stats = training.end_epoch()
    assert stats.at_max == 0.5 and stats.collapse() is None and stats.std > 0
    assert training.epochs[0].collapse() and len(training.epochs) == 2


def test_python_count_matches_the_tensor_count() -> None:
    """``choose`` counts heads in Python, the masked forward in torch: the same answer at every budget,
    including budgets whose ``s * H`` falls on or next to a whole number."""
    for rounding in ("ceil", "floor"):
        router = HeadRouter(RouterSpec(hidden_size=8, num_layers=1, num_heads=12, s_min=0.05, s_max=1.0,
                                       rounding=rounding))
        s = torch.cat([torch.linspace(0.05, 1.0, 2001), torch.arange(1, 13) / 12,
                       torch.arange(1, 13) / 12 + 1e-7, torch.arange(1, 13) / 12 - 1e-7]).float()
        assert router.count(s).tolist() == [router._count(v) for v in s.tolist()]


def test_schedule_anneals_then_holds() -> None:
    router = HeadRouter(RouterSpec(hidden_size=8, num_layers=1, num_heads=4))
    training = RouterTraining(router, tau_start=2.0, tau_end=0.2, noise=0.5, explore_fraction=0.5)
    assert training.schedule(0.0) == pytest.approx((2.0, 0.5))
    assert training.schedule(0.25) == pytest.approx(((2.0 * 0.2) ** 0.5, 0.25))
    assert training.schedule(0.5) == pytest.approx((0.2, 0.0))
    assert training.schedule(0.9) == pytest.approx((0.2, 0.0))


def test_penalty_needs_a_training_pass() -> None:
    router = HeadRouter(RouterSpec(hidden_size=8, num_layers=1, num_heads=4))
    with pytest.raises(ModelError, match="training mode"):
        RouterTraining(router).penalty()


def test_bad_router_settings_are_refused() -> None:
    with pytest.raises(ModelError, match="s_min <= s_max"):
        RouterSpec(hidden_size=8, num_layers=1, num_heads=4, s_min=0.9, s_max=0.5)
    with pytest.raises(ModelError, match="rounding"):
        RouterSpec(hidden_size=8, num_layers=1, num_heads=4, rounding="nearest")
    with pytest.raises(ModelError, match="signal"):
        RouterSpec(hidden_size=8, num_layers=1, num_heads=4, signal="max")
    with pytest.raises(ModelError, match="target budget must lie"):
        RouterTraining(HeadRouter(RouterSpec(hidden_size=8, num_layers=1, num_heads=4)), target_budget=0.95)
    clf, ids, mask = _routed()
    with pytest.raises(ModelError, match="takes no gates"):
        clf.runtime(ids, mask, gates=torch.ones(3, 4))
    with pytest.raises(ModelError, match="cannot be pruned"):
        clf.prune(clf.model.head_config)
    with pytest.raises(ModelError, match="every head present"):
        RoutedClassifier(clf.model.prune(clf.model.head_config.__class__(((0,), (0,), (0,)), 4)), clf.router)


def test_evaluator_counts_each_inputs_heads() -> None:
    clf, _, _ = _routed()
    context = _context()
    evaluator = Evaluator(context.dense, context.search, HardwareProfile(seq_len=12), repeats=3)
    with clf.router.forcing(0.5):
        half = evaluator.evaluate_classifier(clf)
    dense = evaluator.evaluate(context.dense.model.head_config)
    assert half.heads_kept == 6 and half.fraction_kept == pytest.approx(0.5)
    assert half.flops < dense.flops and half.params > dense.params  # the router's weights come on top
    free = evaluator.evaluate_classifier(clf)
    assert 3 <= free.heads_kept <= 12 and half.latency_ms > 0 and free.speedup > 0


def test_saved_and_exported_routed_model_runs_with_its_router(tmp_path) -> None:
    clf, ids, mask = _routed(per_layer=False, rounding="floor")
    texts = ["w1 w2 c0x1", "w3 not c1x2 w4 w5"]
    expected = clf.logits(texts)
    folder = export(clf, tmp_path / "export", onnx=True)
    assert (folder / "router.safetensors").is_file() and not (folder / "model.onnx").exists()
    assert "Per-input head budgets" in (folder / "model_card.md").read_text()
    loaded = load(folder)
    assert loaded.router is not None and loaded.router.spec == clf.router.spec
    torch.testing.assert_close(loaded.logits(texts), expected)
    with pytest.raises(ExportError, match="without budget"):
        load(folder, budget=0.5)

"""Static and budget-conditioned head gates: monotone and nested kept sets, exact realised cost, caching."""

import itertools

import pytest
import torch

from headsearch.cost import HardwareProfile
from headsearch.heads import HeadConfig, heads_for_budget
from headsearch.models.gates import BudgetGates, StaticGates, deployment_order
from headsearch.models.training import TrainConfig, train
from headsearch.strategies.budgeted_gates import BudgetedGatesStrategy
from headsearch.strategies.static_gates import StaticGatesStrategy
from headsearch.testing import tiny_context

BUDGETS = [0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.0]


@pytest.fixture(scope="module")
def trained():
    return tiny_context(trained=True, layers=3, heads=4)


def test_gate_function_is_monotone_in_the_budget():
    gates = BudgetGates(3, 4)
    torch.manual_seed(0)
    with torch.no_grad():
        gates.alpha.normal_(0, 3)
        gates.beta.normal_(0, 3)
    values = torch.stack([gates.gates(b) for b in BUDGETS])
    assert (values[1:] >= values[:-1] - 1e-7).all()


def test_kept_heads_are_nested_across_budgets(trained):
    strategy = BudgetedGatesStrategy()
    kept = {b: strategy.propose({"budget": b}, trained).head_config for b in BUDGETS}
    assert len(trained.cache[("budgeted_gates", "models")]) == 1  # one checkpoint for every budget
    for b1, b2 in itertools.combinations(BUDGETS, 2):
        assert kept[b1].is_subset_of(kept[b2]), (b1, b2)


@pytest.mark.parametrize("name", ["budgeted_gates", "static_gates"])
def test_realised_cost_is_the_requested_budget(trained, name):
    from headsearch.strategies.registry import get

    strategy = get(name).cls()
    L, H = trained.num_layers, trained.num_heads
    for b in (0.25, 0.5, 0.75):
        candidate = strategy.propose({"budget": b}, trained)
        config = candidate.head_config
        assert abs(config.total_kept - b * L * H) <= 1  # within one head per model
        assert all(config.counts) and config.is_subset_of(candidate.model.model.head_config)  # a head per layer


def test_static_gates_train_until_the_mass_meets_the_budget(trained):
    candidate = StaticGatesStrategy().propose({"budget": 0.25, "max_epochs": 8}, trained)
    assert candidate.info["mass_met_budget"] and candidate.info["expected_gate_mass"] <= 0.25 + 0.02


def test_deployment_order_puts_a_head_of_every_layer_first():
    scores = torch.tensor([[0.9, 0.8, 0.7], [0.1, 0.2, 0.05], [0.5, 0.95, 0.3]])
    order = deployment_order(scores)
    assert order[:3] == [(2, 1), (0, 0), (1, 1)]
    assert HeadConfig.first(order, heads_for_budget(0.1, 3, 3), 3, 3).counts == (1, 1, 1)
    assert HeadConfig.first(order, 5, 3, 3).kept == ((0, 1, 2), (1,), (1,))  # then the best of the rest: 0.8, 0.7
    with pytest.raises(ValueError, match="budget"):
        heads_for_budget(0.0, 3, 3)


def test_gates_train_with_the_model_and_distillation_runs(trained):
    clf = trained.dense.prune(trained.dense.model.head_config)
    gates = StaticGates(3, 4, 0.25, learning_rate=0.1)
    before = gates.log_alpha.detach().clone()
    losses = train(clf, trained.train.head(64), TrainConfig(epochs=1, learning_rate=1e-3), gates=gates, progress=False,
                   teacher=lambda ids, mask: trained.dense.model(ids, mask))
    assert not gates.log_alpha.detach().equal(before) and all(torch.isfinite(torch.tensor(losses)))


def test_one_export_serves_every_budget(trained, tmp_path):
    from headsearch.errors import ExportError
    from headsearch.export import export, load
    from headsearch.strategies.budgeted_gates import checkpoint

    clf, gates, _ = checkpoint(trained, {})
    order = gates.order()
    export(clf, tmp_path / "multi", head_order=order, onnx=False)
    ids, mask = clf.encode(list(trained.search.texts[:8]))
    for b in (0.25, 0.5, 1.0):
        sliced = load(tmp_path / "multi", budget=b)
        config = HeadConfig.first(order, heads_for_budget(b, 3, 4), 3, 4)
        assert sliced.model.head_config == config
        gated = clf.model(ids, mask, gates=torch.tensor(config.mask()))
        assert torch.allclose(sliced.model(ids, mask), gated, atol=1e-5)
    with pytest.raises(ExportError, match="budget"):
        load(tmp_path / "multi", budget=1.5)
    export(clf, tmp_path / "single", onnx=False)
    with pytest.raises(ExportError, match="not a multi-budget export"):
        load(tmp_path / "single", budget=0.5)


def _recording(reports: list):
    """A progress hook that asks for everything a driver may ask for: (step, accuracy, cost)."""
    return lambda step, accuracy, cost: reports.append((step, accuracy(), cost()))


@pytest.mark.parametrize("name", ["static_gates", "budgeted_gates", "budgetformer"])
def test_training_strategies_report_accuracy_and_cost_after_every_epoch(name):
    """What a driver's early stopping sees: one report per epoch, the last one the candidate's own accuracy and
    heads (a routed model: its mean FLOPs ratio). Budget-conditioned gates' checkpoint serves every budget, so
    its training is never reported (stopping it would only have the next trial train it again)."""
    from headsearch.models.encoded import EncodedSplit
    from headsearch.objectives import Evaluator
    from headsearch.strategies.registry import get

    context = tiny_context(trained=True, layers=2, heads=4)  # fresh: no cached checkpoint, so it trains
    reports = []
    context.progress_hook = _recording(reports)
    params = {"budget": 0.5, "epochs": 2, "max_epochs": 2, "train_rows": 200}
    candidate = get(name).cls().propose(params, context)
    if name == "budgeted_gates":
        assert reports == []
        return
    assert [step for step, _, _ in reports] == [1, 2]
    clf = candidate.model
    final = (EncodedSplit(clf, context.search).accuracy(clf.runtime) if clf.router is not None
             else EncodedSplit(clf, context.search).accuracy(clf.model.prune(candidate.head_config)))
    assert reports[-1][1] == pytest.approx(final)
    if clf.router is None:
        assert reports[-1][2] == candidate.head_config
    else:  # the routed model's mean FLOPs ratio, as the evaluator measures it
        evaluator = Evaluator(context.dense, context.search, HardwareProfile(seq_len=context.seq_len), repeats=1)
        assert reports[-1][2] == pytest.approx(evaluator.evaluate_routed(clf).flops_ratio)
    context.progress_hook = None
    assert get(name).cls().propose(params, context).head_config == candidate.head_config  # cached: no reports, same result


@pytest.mark.parametrize(("name", "params", "steps"), [
    ("static_gates", {"budget": 0.5, "epochs": 1, "max_epochs": 1, "train_rows": 200, "recovery_epochs": 2}, [1, 2, 3]),
    ("budgeted_gates", {"budget": 0.5, "epochs": 1, "train_rows": 200, "adapt_epochs": 1}, [2]),
    ("cahp", {"recovery_epochs": 2, "recovery_rows": 200, "pool_size": 8, "embedding": "pca"}, [1, 2]),
])
def test_recovery_epochs_are_reported_too(name, params, steps):
    """Fine-tuning after pruning (static gates' and CAHP's recovery, budget-conditioned gates' adaptation) reports
    after every epoch as training does, so a driver can stop a lagging trial there; the last report is the
    accuracy of the candidate it returns."""
    from headsearch.models.encoded import EncodedSplit
    from headsearch.strategies.registry import get

    context = tiny_context(trained=True, layers=2, heads=4)
    reports = []
    context.progress_hook = _recording(reports)
    candidate = get(name).cls().propose(params, context)
    assert [step for step, _, _ in reports] == steps
    assert reports[-1][1] == pytest.approx(EncodedSplit(candidate.model, context.search).accuracy(candidate.model.model))
    assert reports[-1][2] == candidate.head_config

"""One trial's failure handling: whatever a strategy or the tracking server does wrong fails that trial with its
reason, never the study; trained models kept for later trials are bounded."""

from __future__ import annotations

import numpy as np
import pytest

from headsearch.heads import HeadConfig
from headsearch.objectives import Objectives
from headsearch.search.trial import TrialRunner
from headsearch.strategies import Candidate, Strategy, StudyContext

SCORES = Objectives(accuracy=0.9, flops=10, flops_ratio=0.5, params=5, latency_ms=1.0, dense_latency_ms=2.0, speedup=2.0,
                    heads_kept=1, fraction_kept=0.5, eval_split="dev")


class OneHead(Strategy):
    name = "one-head"
    search_space = "dense.yaml"
    info: dict = {}

    def propose(self, params, context):
        return Candidate(HeadConfig(((0,),), num_heads=2), "one head", dict(self.info))


def runner(info: dict, on_trial=None) -> TrialRunner:
    strategy = OneHead()
    strategy.info = info
    context = StudyContext(dense=None, search=None, scoring=None, seq_len=8)
    return TrialRunner(strategy, context, evaluate=lambda candidate, report: SCORES, objectives=("accuracy", "flops"),
                       on_trial=on_trial)


def test_non_json_info_fails_the_trial_with_the_key():
    outcome = runner({"ok": 1.5, "spread": np.float32(0.5)}).run(0, dict)
    assert outcome.values is None
    assert "Candidate.info['spread'] is not JSON (float32)" in outcome.attrs["fail_reason"]
    assert runner({"ok": 1.5, "nested": {"a": [1, 2]}}).run(1, dict).values == [0.9, 10.0]


def test_a_logging_failure_fails_the_trial_not_the_study():
    def broken(record):
        raise ConnectionError("tracking server unreachable")

    outcome = runner({}, on_trial=broken).run(0, dict)
    assert outcome.values is None and "logging the trial failed: ConnectionError" in outcome.attrs["fail_reason"]


def test_trained_models_kept_are_bounded_per_strategy():
    context = StudyContext(dense=None, search=None, scoring=None, seq_len=8)
    trained = []

    def train(setting):
        trained.append(setting)
        return object()

    first = context.cached_model("gates", 0.1, lambda: train(0.1))
    assert context.cached_model("gates", 0.1, lambda: train(0.1)) is first  # reused
    for budget in (0.2, 0.3, 0.4):
        context.cached_model("gates", budget, lambda budget=budget: train(budget))
    context.cached_model("router", 0.5, lambda: train("router"))
    assert len(context.cache[("gates", "models")]) == StudyContext.MODELS_KEPT
    assert len(context.cache[("router", "models")]) == 1  # per strategy
    context.cached_model("gates", 0.1, lambda: train(0.1))  # dropped: trained again
    assert trained == [0.1, 0.2, 0.3, 0.4, "router", 0.1]


@pytest.mark.parametrize("value", [float("nan"), None, "text", [1, "a"], {"k": True}])
def test_json_values_pass(value):
    assert runner({"v": value}).run(0, dict).values is not None

"""Early stopping of trials that train: the successive-halving rules, and the Optuna driver applying them
against rung records in the study's storage."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from headsearch.heads import HeadConfig
from headsearch.objectives import Objectives
from headsearch.search.early_stopping import Rungs, crowding, fronts, promote, ranking
from headsearch.search.liveness import rerun_killed
from headsearch.search.optuna_driver import counted_trials, run_trials
from headsearch.search.rungs import EARLY_STOP_ATTR, EPOCHS_ATTR
from headsearch.search.trial import TrialRunner
from headsearch.searchspace import SearchSpace
from headsearch.strategies.base import Candidate, Strategy
from headsearch.testing import tiny_context


def test_rungs_are_grace_times_powers_of_eta_up_to_max_t():
    assert Rungs(eta=3, grace=1, max_t=100).levels == [1, 3, 9, 27, 81]
    assert Rungs(eta=2, grace=2, max_t=16).levels == [2, 4, 8, 16]
    rungs = Rungs(eta=2, grace=1, max_t=8)
    assert [rungs.due(step, set()) for step in (1, 2, 3, 4, 9)] == [1, 2, 2, 4, 8]
    assert rungs.due(3, {2}) is None  # step 3 is past rung 2, which the trial already recorded
    assert rungs.due(5, {1}) == 4  # a trial that skipped epochs (a cached fit) joins at the rung it is at
    assert Rungs(rule="none").due(1, set()) is None
    with pytest.raises(ValueError, match="eta >= 2"):
        Rungs(eta=1)
    with pytest.raises(ValueError, match="not known"):
        Rungs(rule="hyperband")


def test_fronts_and_crowding():
    points = [(0.9, 1.0), (0.5, 0.2), (0.8, 1.0), (0.7, 0.5), (0.4, 0.9)]
    assert fronts(points) == [[0, 1, 3], [2, 4]]  # (0.4, 0.9) is cheaper than (0.8, 1.0): the same second front
    assert crowding([(0.9, 1.0), (0.5, 0.2), (0.7, 0.5)]) == [math.inf, math.inf, pytest.approx(2.0)]  # 0.4/0.4 + 0.8/0.8
    assert ranking(points) == [0, 1, 3, 2, 4]  # a front's ends before its inside; a whole front before the next


def test_mo_asha_promotes_a_cheap_non_dominated_trial_that_asha_stops():
    expensive = (0.9, 1.0)
    cheap = (0.6, 0.3)
    assert promote(cheap, [expensive], eta=2, rule="mo_asha")
    assert not promote(cheap, [expensive], eta=2, rule="asha")
    dominated = (0.8, 1.0)
    assert not promote(dominated, [expensive, cheap], eta=2, rule="mo_asha")
    assert promote(dominated, [expensive, cheap], eta=2, rule="asha")  # second of three by accuracy
    assert promote((0.1, 1.0), [], eta=3, rule="mo_asha")  # the first at a rung goes on
    assert promote((0.1, 1.0), [expensive], eta=2, rule="none")


def test_equal_costs_fall_back_to_asha_and_ties_go_the_trials_way():
    same = [(0.7, 0.5), (0.9, 0.5), (0.8, 0.5)]
    for point in [(0.85, 0.5), (0.75, 0.5), (0.9, 0.5)]:
        assert promote(point, same, eta=2, rule="mo_asha") == promote(point, same, eta=2, rule="asha")
    assert promote((0.85, 0.5), same, eta=2, rule="asha")  # beaten by one; the top 2 of 4 go on
    assert not promote((0.75, 0.5), same, eta=2, rule="asha")
    assert promote((0.9, 1.0), [(0.9, 1.0)], eta=2, rule="mo_asha")


def test_crowding_keeps_the_ends_of_a_front_larger_than_the_quota():
    """Three non-dominated trials, quota 2 of 4: the most accurate and the cheapest are the front's ends."""
    at_rung = [(0.9, 1.0), (0.5, 0.2), (0.4, 1.0)]
    assert promote((0.45, 0.1), at_rung, eta=2, rule="mo_asha")  # the new cheapest end
    assert not promote((0.7, 0.6), at_rung, eta=2, rule="mo_asha")  # inside the front, between the ends


# Known per-epoch accuracy curves: A is accurate and dense, B cheap and less accurate (on the front),
# C dense and always below A (dominated). Cost is the fraction of heads kept.
CURVES = {
    "A": (8, [0.6, 0.7, 0.8, 0.9]),
    "B": (2, [0.4, 0.45, 0.5, 0.55]),
    "C": (8, [0.5, 0.6, 0.7, 0.8]),
}


class Curves(Strategy):
    """A plug-in that "trains" for 4 epochs along a known accuracy curve and keeps the first k heads."""

    name = "curves"

    def propose(self, params, context):
        k, accuracies = CURVES[params["curve"]]
        config = HeadConfig((tuple(range(k // 2)), tuple(range(k - k // 2))), 4)  # of 2 layers x 4 heads
        for epoch, accuracy in enumerate(accuracies, start=1):
            context.report_progress(epoch, lambda a=accuracy: a, lambda: config)
        return Candidate(config, info={"accuracy": accuracies[-1]})


def _objectives(candidate: Candidate, report) -> Objectives:
    fraction = candidate.head_config.fraction_kept
    return Objectives(accuracy=candidate.info["accuracy"], flops=int(1000 * fraction), flops_ratio=fraction, params=0,
                      latency_ms=fraction, dense_latency_ms=1.0, speedup=1 / fraction,
                      heads_kept=candidate.head_config.total_kept, fraction_kept=fraction, eval_split="dev")


@pytest.fixture(scope="module")
def context():
    return tiny_context(layers=2, heads=4)


def _run(context, tmp_path, rule: str) -> dict[str, optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{tmp_path / rule}.db"
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    for curve in CURVES:  # A, then B, then C: each meets the rung records of the ones before
        study.enqueue_trial({"curve": curve})
    runner = TrialRunner(Curves(), context, _objectives, ["accuracy", "flops"],
                         price=lambda config: config.fraction_kept)
    space = SearchSpace.model_validate({"params": {"curve": {"type": "categorical", "choices": list(CURVES)}}})
    run_trials(study, runner, space, n_trials=3, progress=False, rungs=Rungs(rule=rule, eta=2, grace=1, max_t=4))
    assert len(counted_trials(study)) == 3  # stopped trials count: no trial is run again
    return {t.params["curve"]: t for t in study.get_trials()}


def test_a_trial_failed_as_lost_while_it_ran_is_dropped_and_its_parameters_run_again(context, tmp_path):
    """Another process fails trial 1 while it runs (its heartbeats were late: ``liveness.on_stale``) and enqueues its
    parameters: this worker drops the result instead of dying on the finished trial, and the rerun completes it."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'lost.db'}", directions=["maximize", "minimize"])
    for curve in CURVES:
        study.enqueue_trial({"curve": curve})
    runner = TrialRunner(Curves(), context, _objectives, ["accuracy", "flops"], price=lambda config: config.fraction_kept)
    real_run = runner.run

    def run_then_lost(number, params, rungs):
        outcome = real_run(number, params, rungs)
        if number == 1:
            study.tell(number, state=TrialState.FAIL)
            rerun_killed(study, number, study.trials[number].params, "killed: no heartbeat")
        return outcome

    runner.run = run_then_lost
    space = SearchSpace.model_validate({"params": {"curve": {"type": "categorical", "choices": list(CURVES)}}})
    run_trials(study, runner, space, n_trials=3, progress=False)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[3].params == trials[1].params and "objectives" not in trials[1].user_attrs


def test_optuna_driver_mo_asha_keeps_the_cheap_trial_and_stops_the_dominated_one(context, tmp_path):
    trials = _run(context, tmp_path, "mo_asha")
    assert trials["A"].state == trials["B"].state == TrialState.COMPLETE
    assert trials["C"].state == TrialState.PRUNED
    assert trials["C"].user_attrs[EARLY_STOP_ATTR] == {"step": 1, "rung": 1, "accuracy": 0.5, "cost": 1.0}
    assert [trials[c].user_attrs[EPOCHS_ATTR] for c in "ABC"] == [4, 4, 1]
    assert trials["B"].user_attrs["rung:4"] == [0.55, 0.25]
    assert "objectives" not in trials["C"].user_attrs


def test_optuna_driver_asha_stops_the_cheap_trial_instead(context, tmp_path):
    trials = _run(context, tmp_path, "asha")
    assert trials["A"].state == TrialState.COMPLETE
    assert trials["B"].state == trials["C"].state == TrialState.PRUNED
    assert trials["B"].user_attrs[EARLY_STOP_ATTR]["step"] == 1  # below A at rung 1: the cheap end is lost
    assert trials["C"].user_attrs[EARLY_STOP_ATTR]["step"] == 2  # second of three at rung 1, below A at rung 2
    assert [trials[c].user_attrs[EPOCHS_ATTR] for c in "ABC"] == [4, 1, 2]


def test_without_early_stopping_every_trial_runs_to_its_end_and_reports_its_epochs(context, tmp_path):
    trials = _run(context, tmp_path, "none")
    assert all(t.state == TrialState.COMPLETE and t.user_attrs[EPOCHS_ATTR] == 4 for t in trials.values())
    assert not any(k.startswith("rung:") for t in trials.values() for k in t.user_attrs)


def test_a_second_worker_decides_against_the_rungs_the_first_recorded(context, tmp_path):
    """Rung records live in the storage: a second worker (its own study object, runner and context) that runs
    C after a first ran A and B stops C against their records, as one process would."""
    storage = f"sqlite:///{tmp_path / 'shared'}.db"
    space = SearchSpace.model_validate({"params": {"curve": {"type": "categorical", "choices": list(CURVES)}}})
    rungs = Rungs(rule="mo_asha", eta=2, grace=1, max_t=4)
    first = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
    for curve in CURVES:
        first.enqueue_trial({"curve": curve})

    def worker(n_trials: int) -> None:
        study = optuna.load_study(study_name="s", storage=storage)
        runner = TrialRunner(Curves(), context, _objectives, ["accuracy", "flops"], price=lambda c: c.fraction_kept)
        run_trials(study, runner, space, n_trials=n_trials, progress=False, rungs=rungs)

    worker(2)  # A and B
    worker(3)  # C, in another "worker"
    trials = {t.params["curve"]: t for t in first.get_trials()}
    assert [trials[c].state for c in "ABC"] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    assert trials["C"].user_attrs[EARLY_STOP_ATTR]["rung"] == 1

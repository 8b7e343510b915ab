"""Candidates scored in rungs of rows: a stratified seeded row order, a stopped candidate that scores no more
rows and is never timed, and in a study: stopped trials on no front, every front point scored on every row."""

from __future__ import annotations

import collections
import json
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState
from tiny_study import write_study
from typer.testing import CliRunner

from headsearch.cli import app
from headsearch.cost import HardwareProfile
from headsearch.heads import HeadConfig
from headsearch.models.encoded import EncodedSplit
from headsearch.objectives import Evaluator
from headsearch.search.early_stopping import Rungs, promote
from headsearch.search.rungs import EARLY_STOP_ATTR, StoppedEarly, TrialRungs
from headsearch.search.trial import TIME_ATTR
from headsearch.study import load_points, load_run, load_time_spent, run_study
from headsearch.study_config import load_study


def test_row_levels_are_shares_of_the_split_and_skip_rungs_too_small_to_rank():
    rungs = Rungs()
    assert rungs.row_levels(872) == (109, 218, 436)  # SST-2 dev
    assert rungs.row_levels(300) == (75, 150)  # 1/8 would be 38 rows, under min_rows 64
    assert rungs.row_levels(100) == () and Rungs(min_rows=8).row_levels(100) == (13, 25, 50)
    with pytest.raises(ValueError, match="fractions between 0 and 1"):
        Rungs(row_fractions=(0.5, 1.0))


def test_at_a_row_rung_a_candidate_nothing_dominates_goes_on_beyond_the_quota():
    front = [(0.9, 0.9), (0.6, 0.4), (0.8, 0.75), (0.75, 0.6)]
    inner = (0.7, 0.5)  # on the front, but crowded: outside the top half by successive halving alone
    rungs = Rungs(row_eta=2)
    assert not promote(inner, front, eta=2, rule="mo_asha")
    assert rungs.promote_rows(inner, front)
    assert not rungs.promote_rows((0.55, 0.95), front)  # dominated and outside the quota: stopped
    assert not Rungs(rule="asha").promote_rows(inner, front)  # asha ranks by accuracy alone


def test_of_two_trials_reaching_a_rung_together_one_decides_with_the_other_in_view():
    """Worker B reaches the rung while worker A is between recording and reading (A's read runs B's whole rung):
    B, the worse, sees A's record and is stopped. Read-then-record would have let both decide as first comers."""
    store: dict[int, dict] = {0: {}, 1: {}}  # trial number -> user attributes: a storage two workers share

    def trials():
        return [SimpleNamespace(number=n, user_attrs=dict(a)) for n, a in store.items()]

    def rungs_of(number, trials):
        return TrialRungs(Rungs(), number, store[number].__setitem__, price=float, trials=trials)

    worse = rungs_of(1, trials)

    def a_reads():  # B arrives at the rung at this moment
        with pytest.raises(StoppedEarly):
            worse.rows(64, 0.5, 0.5)
        return trials()

    rungs_of(0, a_reads).rows(64, 0.9, 0.5)  # A goes on: nothing dominates it
    assert store[1]["rung:rows:64"] == [0.5, 0.5]


def test_any_first_rows_hold_each_label_in_proportion_in_a_seeded_order(tiny_builtin, tiny_task):
    split = EncodedSplit(tiny_builtin, tiny_task, seed=0)
    order = split.stratified_order()
    assert sorted(order.tolist()) == list(range(len(tiny_task)))
    labels = [tiny_task.labels[i] for i in order.tolist()]
    share = {k: v / len(labels) for k, v in collections.Counter(labels).items()}
    for n in range(1, len(labels) + 1):  # each label's count in the first n rows, within one row per label of its share
        seen = collections.Counter(labels[:n])
        assert all(abs(seen[k] - n * p) <= len(share) for k, p in share.items()), n
    assert EncodedSplit(tiny_builtin, tiny_task, seed=0).stratified_order().tolist() == order.tolist()
    assert EncodedSplit(tiny_builtin, tiny_task, seed=1).stratified_order().tolist() != order.tolist()
    sizes = [sum(len(b[2]) for b in segment) for segment in split.segments((25, 50, 100))]
    assert sizes == [25, 25, 50, len(tiny_task) - 100]


def test_a_candidate_stopped_at_a_row_rung_scores_no_more_rows_and_is_never_timed(timed_configs, tiny_builtin, tiny_task):
    timed = timed_configs
    profile = HardwareProfile(threads=1, batch_size=1, seq_len=16)
    evaluator = Evaluator(tiny_builtin, tiny_task, profile, repeats=1, row_levels=(25, 50, 100))
    config = HeadConfig(((0, 1), (2,), (0, 1, 2, 3)), 4)
    first: list[tuple] = []

    def stop_at_50(rows, accuracy, flops_ratio):
        first.append((rows, accuracy, flops_ratio))
        if rows == 50:
            raise StoppedEarly({"rows": rows, "rung": "rows:50", "accuracy": accuracy, "cost": flops_ratio})

    with pytest.raises(StoppedEarly):
        evaluator.evaluate(config, stop_at_50)
    assert [r for r, _, _ in first] == [25, 50] and evaluator.spent.rows == 50 and timed == []
    assert evaluator.spent.latency_s == 0.0

    again: list[tuple] = []  # proposed again: the scored rows are told again, not scored again
    result = evaluator.evaluate(config, lambda *point: again.append(point))
    assert again[:2] == first and [r for r, _, _ in again] == [25, 50, 100]
    assert evaluator.spent.rows == len(tiny_task) and timed == [config]
    plain = Evaluator(tiny_builtin, tiny_task, profile, repeats=1)  # one pass in length order, no rungs
    assert result.accuracy == plain.evaluate(config).accuracy  # a count of decisions: exact in any batch order


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("rows")
    study = write_study(tmp_path, [{"name": "random", "n_trials": 10}],
                        data={"dataset": "synthetic", "search_rows": 160, "scoring_rows": 32},
                        early_stopping={"row_fractions": [0.25, 0.5], "min_rows": 8})
    run = run_study(load_study(study), progress=False, echo=lambda *a: None)
    return run, load_study(study)


def test_stopped_candidates_are_on_no_front_and_every_front_point_is_scored_on_every_row(stopped_run):
    run, config = stopped_run
    info = load_run(run)
    trials = optuna.load_study(study_name="tiny:random", storage=info["storage"]).trials
    stopped = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert stopped and complete and len(stopped) + len(complete) == 10
    for t in stopped:
        assert str(t.user_attrs[EARLY_STOP_ATTR]["rung"]) in ("rows:40", "rows:80") and "objectives" not in t.user_attrs
        assert t.user_attrs[TIME_ATTR]["latency_s"] == 0.0  # never timed
        assert t.user_attrs[TIME_ATTR]["rows_scored"] < 160
    assert {p.trial for p in load_points(run)} == {t.number for t in complete}

    from headsearch.study import build_context  # rescore every complete trial on all rows, no rungs, as a check

    context, _ = build_context(config, progress=False)
    plain = Evaluator(context.dense, context.search, HardwareProfile(threads=1, batch_size=1, seq_len=16), repeats=1)
    for t in complete:
        config_ = HeadConfig.from_dict(t.user_attrs["head_config"])
        assert t.user_attrs["objectives"]["accuracy"] == plain.evaluate(config_).accuracy


def test_show_says_where_the_time_went(stopped_run):
    run, _ = stopped_run
    trials = optuna.load_study(study_name="tiny:random", storage=load_run(run)["storage"]).trials
    (spent,) = load_time_spent(run)
    times = [t.user_attrs[TIME_ATTR] for t in trials]
    assert (spent.strategy, spent.trials) == ("random", 10)
    assert spent.stopped_at_rows == sum(t.state == TrialState.PRUNED for t in trials)
    assert spent.rows_scored == sum(x["rows_scored"] for x in times) and spent.rows_full == 10 * 160
    assert spent.propose_s + spent.scoring_s + spent.latency_s <= spent.wall_s
    from mlflow import MlflowClient

    client = MlflowClient(load_run(run)["tracking_uri"])
    logged = client.search_runs([r.experiment_id for r in client.search_experiments()], "tags.trial != ''")
    assert sorted(r.data.metrics["time.rows_scored"] for r in logged) == sorted(x["rows_scored"] for x in times)
    result = CliRunner().invoke(app, ["show", str(run)])
    assert result.exit_code == 0, result.output
    assert "where the time went" in result.output
    report = (run / "report.md").read_text()
    assert "## Where the time went" in report and "| " + " | ".join(spent.row()) + " |" in report


def test_a_run_stopped_before_a_strategy_began_still_shows(stopped_run, tmp_path):
    """A run killed before its second strategy started has no Optuna study for it: show reads what there is."""
    run, _ = stopped_run
    info = load_run(run)
    (tmp_path / "run.json").write_text(json.dumps({**info, "strategies": [*info["strategies"], "nas"]}))
    assert [t.strategy for t in load_time_spent(tmp_path)] == ["random"]
    assert {p.strategy for p in load_points(tmp_path)} == {"random"}

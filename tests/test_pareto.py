"""Fronts, hypervolume and knee on hand-made points with known answers."""

import pytest

from headsearch.errors import HeadsearchError
from headsearch.pareto import Point, hypervolume, knee, non_dominated, pick, trials_to_reach
from headsearch.report.summary import summarise


def pt(acc, flops, lat=0.5, strategy="s", trial=0):
    return Point(strategy, trial, acc, flops, lat)


def test_non_dominated_2d():
    a, b, c, d = pt(0.9, 0.5, trial=1), pt(0.8, 0.3, trial=2), pt(0.7, 0.6, trial=3), pt(0.95, 0.9, trial=4)
    front = non_dominated([a, b, c, d])
    assert front == [b, a, d]  # c is beaten by a on both axes; sorted by FLOPs
    assert non_dominated([]) == []


def test_non_dominated_3d_keeps_faster_point():
    a = pt(0.9, 0.5, lat=0.9, trial=1)
    b = pt(0.9, 0.6, lat=0.4, trial=2)  # more FLOPs but faster: survives only in 3-D
    assert non_dominated([a, b]) == [a]
    assert set(non_dominated([a, b], three=True)) == {a, b}


def test_hypervolume_known_values():
    # one point (acc 0.8, flops 0.5): box (1-0.2) x (1-0.5) = 0.4
    assert hypervolume([pt(0.8, 0.5)]) == pytest.approx(0.4)
    # two points: union of [0.2,1]x[0.5,1] and [0.4,1]x[0.3,1] = 0.4 + 0.6*0.2 = 0.52
    assert hypervolume([pt(0.8, 0.5), pt(0.6, 0.3)]) == pytest.approx(0.52)
    # a dominated point adds nothing; a point at dense cost adds nothing
    assert hypervolume([pt(0.8, 0.5), pt(0.7, 0.6), pt(1.0, 1.0)]) == pytest.approx(0.4)
    assert hypervolume([pt(0.8, 0.5, lat=0.5)], three=True) == pytest.approx(0.8 * 0.5 * 0.5)
    assert hypervolume([]) == 0.0


def test_trials_to_reach_counts_trials_until_95_percent_of_the_final_hypervolume():
    # final HV 0.52 (see above); trial 0 alone 0.4 (77%), with trial 3 0.52: reached at the 4th trial (number 3),
    # trials 1 and 2 (dominated, or failed: no point) count as spent
    points = [pt(0.8, 0.5, trial=0), pt(0.7, 0.6, trial=1), pt(0.6, 0.3, trial=3)]
    assert trials_to_reach(points, 0.95) == 4
    assert trials_to_reach(points, 0.75) == 1
    assert trials_to_reach(list(reversed(points)), 0.95) == 4  # trial order, not list order
    assert trials_to_reach([pt(0.5, 1.0)], 0.95) is None  # nothing below dense cost: no hypervolume
    astar = Point("astar", 0, 0.8, 0.5, 0.5, info={"masks_to_best": 312})
    rows = {s.strategy: s.efficiency for s in summarise([*points, astar], 0.9, ["s", "astar"]).strategies}
    assert rows == {"s": "4", "astar": "1 (312 masks)"}


def test_knee_of_a_concave_front():
    # accuracy rises steeply until flops 0.4, then flattens: the knee is at 0.4
    xs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    ys = [0.30, 0.55, 0.75, 0.90, 0.91, 0.92, 0.93, 0.935, 0.94, 0.945]
    front = [pt(y, x, trial=i) for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    assert knee(front).flops_ratio == pytest.approx(0.4)
    assert knee(front[:2]).accuracy == pytest.approx(0.55)  # too few points: the most accurate


def test_pick_rules():
    points = [pt(0.90, 0.5, trial=1), pt(0.80, 0.3, trial=2), pt(0.95, 0.9, trial=3)]
    assert pick(points, "max-accuracy").point.trial == 3
    assert pick(points, "min-flops").point.trial == 2
    assert pick(points, "min-flops", max_accuracy_drop=0.06, dense_accuracy=0.95).point.trial == 1
    assert pick(points, "knee").note is None
    with pytest.raises(HeadsearchError, match="relax --max-accuracy-drop"):
        pick(points, "knee", max_accuracy_drop=0.0, dense_accuracy=0.99)
    with pytest.raises(HeadsearchError, match="Unknown pick rule"):
        pick(points, "best")


def test_knee_ignores_duplicate_configurations():
    xs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0]
    ys = [0.30, 0.55, 0.75, 0.90, 0.91, 0.92, 0.93, 0.935, 0.94, 0.945, 0.945]
    front = [pt(y, x, trial=i) for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    assert knee(front).flops_ratio == pytest.approx(0.4)


def test_a_point_slower_than_dense_is_never_picked_silently():
    """The knee of this front would be trial 3 (the quickstart's case: fewer FLOPs, yet slower than dense);
    with trial 3 slower than dense the pick moves to the knee of the points that are not, and says so."""
    xs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    ys = [0.30, 0.55, 0.75, 0.90, 0.91, 0.92, 0.93, 0.935, 0.94, 0.945]
    fast = [pt(y, x, lat=0.9, trial=i) for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    assert pick(fast, "knee").point.trial == 3
    slow = [pt(y, x, lat=1.06 if i == 3 else 0.9, trial=i) for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    chosen = pick(slow, "knee")
    assert not chosen.slower and chosen.point.latency_ratio <= 1.0 and chosen.point.trial != 3
    assert "1 point(s) of the front slower than dense" in chosen.note
    assert pick(slow, "min-flops").point.trial == 0 and pick(slow, "max-accuracy").point.trial == 9
    everything_slow = [pt(y, x, lat=1.1, trial=i) for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    chosen = pick(everything_slow, "knee")
    assert chosen.slower and chosen.point.trial == 3 and "every candidate is slower than dense" in chosen.note


def test_the_report_knee_follows_the_same_rule():
    from headsearch.report import summarise

    points = [pt(0.9, 0.3, lat=1.05, strategy="a", trial=0), pt(0.85, 0.5, lat=0.8, strategy="b", trial=0)]
    summary = summarise(points, 0.92, ["a", "b"])
    assert summary.knee.strategy == "b" and "slower than dense" in summary.knee_note


def test_export_warns_when_slower_than_dense():
    from headsearch.cli import slowdown_warning

    profile = {"batch_size": 1, "threads": 1, "seq_len": 64}
    assert slowdown_warning({"speedup": 1.2}, profile) is None
    assert "measured 0.940x the speed of dense (slower) at batch 1" in slowdown_warning({"speedup": 0.94}, profile)

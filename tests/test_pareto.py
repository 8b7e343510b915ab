"""Fronts, hypervolume and knee on hand-made points with known answers."""

import pytest

from headsearch.errors import HeadsearchError
from headsearch.pareto import Point, hypervolume, knee, non_dominated, pick


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


def test_knee_of_a_concave_front():
    # accuracy rises steeply until flops 0.4, then flattens: the knee is at 0.4
    xs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    ys = [0.30, 0.55, 0.75, 0.90, 0.91, 0.92, 0.93, 0.935, 0.94, 0.945]
    front = [pt(y, x, trial=i) for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    assert knee(front).flops_ratio == pytest.approx(0.4)
    assert knee(front[:2]).accuracy == pytest.approx(0.55)  # too few points: the most accurate


def test_pick_rules():
    points = [pt(0.90, 0.5, trial=1), pt(0.80, 0.3, trial=2), pt(0.95, 0.9, trial=3)]
    assert pick(points, "max-accuracy").trial == 3
    assert pick(points, "min-flops").trial == 2
    assert pick(points, "min-flops", max_accuracy_drop=0.06, dense_accuracy=0.95).trial == 1
    with pytest.raises(HeadsearchError, match="relax --max-accuracy-drop"):
        pick(points, "knee", max_accuracy_drop=0.0, dense_accuracy=0.99)
    with pytest.raises(HeadsearchError, match="Unknown pick rule"):
        pick(points, "best")


def test_knee_ignores_duplicate_configurations():
    xs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0]
    ys = [0.30, 0.55, 0.75, 0.90, 0.91, 0.92, 0.93, 0.935, 0.94, 0.945, 0.945]
    front = [pt(y, x, trial=i) for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    assert knee(front).flops_ratio == pytest.approx(0.4)

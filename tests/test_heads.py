import json

import pytest

from headsearch import HeadConfig, HeadConfigError
from headsearch.heads import heads_for_budget


def test_sorted_hashable_and_equal():
    a = HeadConfig(((3, 1), (0,)), num_heads=4)
    b = HeadConfig(((1, 3), (0,)), num_heads=4)
    assert a.kept == ((1, 3), (0,))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != HeadConfig(((1, 3), (1,)), num_heads=4)


def test_views():
    c = HeadConfig(((0, 1, 2), (), (3,)), num_heads=4)
    assert c.counts == (3, 0, 1)
    assert c.total_kept == 4 and c.total_heads == 12
    assert c.fraction_kept == pytest.approx(1 / 3)
    assert c.has_empty_layer
    assert c.mask() == [[1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert HeadConfig.from_mask(c.mask()) == c
    assert HeadConfig(((0,), (), ()), 4).is_subset_of(c)
    assert not HeadConfig(((3,), (), ()), 4).is_subset_of(c)
    assert HeadConfig.dense(2, 3).kept == ((0, 1, 2), (0, 1, 2))


def test_dict_json_and_file_round_trip(tmp_path):
    c = HeadConfig(((0, 5), (2,), (1, 2, 3)), num_heads=6)
    assert HeadConfig.from_dict(c.to_dict()) == c
    assert HeadConfig.from_json(c.to_json()) == c
    c.save(tmp_path / "hc.json")
    assert HeadConfig.load(tmp_path / "hc.json") == c
    assert json.loads((tmp_path / "hc.json").read_text())["num_layers"] == 3


@pytest.mark.parametrize(
    ("kept", "num_heads", "message"),
    [
        (((0, 4),), 4, "out of range"),
        (((-1,),), 4, "out of range"),
        (((1, 1),), 4, "more than once"),
        ((), 4, "at least one layer"),
        (((0,),), 0, "num_heads must be an int >= 1"),
        (((0.5,),), 4, "must be ints"),
        ("01", 4, "sequence of per-layer"),
    ],
)
def test_invalid_configs_name_the_problem(kept, num_heads, message):
    with pytest.raises(HeadConfigError, match=message):
        HeadConfig(kept, num_heads)


def test_check_fits():
    c = HeadConfig(((0,), ()), num_heads=4)
    with pytest.raises(HeadConfigError, match="has 2 layers but the model has 3"):
        c.check_fits(3, 4, allow_empty_layers=True)
    with pytest.raises(HeadConfigError, match="for 4 heads per layer but the model has 8"):
        c.check_fits(2, 8, allow_empty_layers=True)
    with pytest.raises(HeadConfigError, match=r"Layer\(s\) \[1\] keep no head"):
        c.check_fits(2, 4, allow_empty_layers=False)
    c.check_fits(2, 4, allow_empty_layers=True)


def test_bad_json_and_dicts(tmp_path):
    with pytest.raises(HeadConfigError, match="Not valid JSON"):
        HeadConfig.from_json("{nope")
    with pytest.raises(HeadConfigError, match="needs the keys"):
        HeadConfig.from_dict({"kept": [[0]]})
    with pytest.raises(HeadConfigError, match="num_layers=3 but lists 1"):
        HeadConfig.from_dict({"kept": [[0]], "num_heads": 2, "num_layers": 3})
    with pytest.raises(HeadConfigError, match="not found"):
        HeadConfig.load(tmp_path / "missing.json")
    with pytest.raises(ValueError):  # HeadConfigError is a ValueError, as the design asks
        HeadConfig(((9,),), 2)


def test_constructors_from_scores_and_orders():
    scores = [[0.1, 0.9, 0.2], [0.05, 0.01, 0.02]]
    assert HeadConfig.top(scores, 3).kept == ((1, 2), (0,))  # every layer's best, then the best of the rest
    assert HeadConfig.top_per_layer(scores, [2, 1]).kept == ((1, 2), (0,))
    assert HeadConfig.top_per_layer([[0.5, 0.5, 0.1]], [1]).kept == ((0,),)  # ties: the lower index
    assert HeadConfig.first([(1, 2), (0, 0), (1, 0)], 2, 2, 3).kept == ((0,), (2,))
    with pytest.raises(HeadConfigError, match="non-empty"):
        HeadConfig.top([], 1)
    assert heads_for_budget(0.5, 2, 3) == 3 and heads_for_budget(0.01, 2, 3) == 2
    with pytest.raises(ValueError, match="budget"):
        heads_for_budget(1.5, 2, 3)

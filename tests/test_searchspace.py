import optuna
import pytest

from headsearch.errors import HeadsearchError
from headsearch.searchspace import SearchSpace, load_space
from headsearch.strategies import available


def test_every_builtin_space_loads_and_samples():
    for info in available().values():
        space = load_space(info.cls.search_space)
        trial = optuna.create_study().ask()
        params = space.suggest(trial, num_layers=3, num_heads=4)
        assert sorted(params) == sorted(space.names(3))


def test_per_layer_and_symbolic_bounds():
    assert load_space("nas.yaml").names(2) == ["budget", "share_layer_0", "share_layer_1"]
    space = SearchSpace(params={"heads_layer": {"type": "int", "low": 1, "high": "num_heads", "per_layer": True}})
    assert space.names(3) == ["heads_layer_0", "heads_layer_1", "heads_layer_2"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = [v for _ in range(20) for v in space.suggest(study.ask(), 3, 4).values()]
    assert min(values) >= 1 and max(values) <= 4 and len(set(values)) > 1


def test_overrides_and_errors(tmp_path):
    space = load_space("random.yaml", {"budget": {"low": 0.4, "high": 0.6}})
    assert (space.params["budget"].low, space.params["budget"].high) == (0.4, 0.6)
    with pytest.raises(HeadsearchError, match="unknown parameter 'frac'"):
        load_space("random.yaml", {"frac": {"low": 0.1}})
    with pytest.raises(HeadsearchError, match="not found"):
        load_space("nothing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  x: {type: float, low: 0.1}\n")
    with pytest.raises(HeadsearchError, match=r"bad\.yaml: params\.x: Value error, a float parameter needs low and high"):
        load_space(bad)
    bad.write_text("params:\n  x: {type: categorical, choices: [1], colour: red}\n")
    with pytest.raises(HeadsearchError, match=r"params\.x\.colour: Extra inputs are not permitted"):
        load_space(bad)


def test_search_space_defaults_are_the_one_source():
    """A strategy given no value for a parameter uses its search space's default; the settings classes that
    library users build directly default to the same values."""
    import dataclasses

    from headsearch.strategies.astar import AStarSettings
    from headsearch.strategies.cahp import CAHPSettings

    for info in available().values():
        space = load_space(info.cls.search_space)
        assert info.cls.with_defaults({}) == space.defaults()
        assert info.cls.with_defaults({"x": 1})["x"] == 1
    for settings, strategy in ((AStarSettings, "astar"), (CAHPSettings, "cahp")):
        defaults = load_space(available()[strategy].cls.search_space).defaults()
        for field in dataclasses.fields(settings):
            if field.name in defaults:
                assert field.default == defaults[field.name], (strategy, field.name)

"""Every sampler draws a trial's parameters from the study's seed and the trial's place among fresh draws: a run
resumed by new processes, a run whose killed trial ran again, and workers sharing a study all draw what one
uninterrupted run draws, and workers with one seed never repeat each other's draws."""

from __future__ import annotations

import optuna
import pytest

from headsearch.search.liveness import rerun_killed
from headsearch.search.samplers import SAMPLERS, draw_index, study_sampler

TRIALS = 24  # beyond NSGA-II's first generation (50 random draws): 24 is enough for TPE's model (10 start-up)


def _objectives(trial: optuna.Trial) -> tuple[float, float]:
    x, k = trial.suggest_float("x", 0.0, 1.0), trial.suggest_int("k", 1, 12)
    return x * k, (1.0 - x) + 1.0 / k


def _study(storage: optuna.storages.BaseStorage, sampler: str) -> optuna.Study:
    return optuna.create_study(study_name="s", storage=storage, load_if_exists=True, sampler=study_sampler(sampler, 7),
                               directions=["maximize", "minimize"])


def _draws(study: optuna.Study) -> list[tuple]:
    """Parameters of the trials that drew them (reruns, which repeat a killed trial's, left out)."""
    return [tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False) if "rerun_of" not in t.user_attrs]


def _one_run(sampler: str) -> list[tuple]:
    study = _study(optuna.storages.InMemoryStorage(), sampler)
    for _ in range(TRIALS):
        trial = study.ask()
        study.tell(trial, _objectives(trial))
    return _draws(study)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_a_resumed_run_with_a_killed_trial_draws_what_one_run_draws(sampler):
    storage = optuna.storages.InMemoryStorage()
    study, done = _study(storage, sampler), 0
    while done < TRIALS:
        if done % 5 == 0:
            study = _study(storage, sampler)  # a new process: a new sampler, the history in the storage
        trial = study.ask()
        values = _objectives(trial)
        if trial.number == 3:  # killed: failed, its parameters enqueued to run again
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            rerun_killed(study, trial.number, trial.params, "killed")
            continue
        study.tell(trial, values)
        done += 1
    trials = study.get_trials(deepcopy=False)
    rerun = next(t for t in trials if t.user_attrs.get("rerun_of") == 3)
    assert rerun.params == trials[3].params and draw_index(study, rerun.number + 1) == rerun.number
    assert _draws(study) == _one_run(sampler)  # the killed trial's draw counted once (its rerun draws nothing)


def test_workers_with_one_seed_draw_different_parameters_and_one_runs_draws():
    """Two processes asking in turn (each its own sampler, one storage): with a plain seeded sampler both would draw
    the same stream; here they draw the first run's draws between them. Random sampling: the draws do not read
    the history, so the order in which the two ask is all that differs."""
    storage = optuna.storages.InMemoryStorage()
    workers = [_study(storage, "random"), _study(storage, "random")]
    asked = [workers[i % 2].ask() for i in range(TRIALS)]
    for i, trial in enumerate(asked):
        trial.suggest_float("x", 0.0, 1.0), trial.suggest_int("k", 1, 12)
        workers[i % 2].tell(trial, _objectives(trial))
    draws = _draws(workers[0])
    assert len(set(draws)) == TRIALS and draws == _one_run("random")

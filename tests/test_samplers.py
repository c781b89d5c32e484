"""Per-trial seeding: what trial n draws depends on the seed, n and the stored trials, not on the process."""
import optuna
import pytest

from hwsearch.study.samplers import make_sampler, trial_seed


def objective(trial):
    return sum((trial.suggest_float(f"x{i}", -5, 5) - i / 3) ** 2 for i in range(4)) + \
        trial.suggest_int("k", -2, 2) ** 2 + (trial.suggest_categorical("c", ["a", "b", "c"]) == "b")


def draws(tmp_path, name, sampler_name, stops):
    """Params of 30 trials, the study reloaded with a fresh sampler (a new process) at each stop."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / name)))
    sampler = make_sampler(sampler_name, seed=3, trials=30)
    study = optuna.create_study(study_name="s", storage=storage, sampler=sampler)
    done = 0
    for stop in [*stops, 30]:
        study = optuna.load_study(study_name="s", storage=storage, sampler=make_sampler(sampler_name, seed=3, trials=30))
        study.optimize(objective, n_trials=stop - done)
        done = stop
    return [t.params for t in study.trials]


@pytest.mark.parametrize("sampler_name", ["tpe", "nsga2", "random", "qmc"])
def test_a_study_picked_up_again_draws_what_an_uninterrupted_one_draws(tmp_path, sampler_name):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    whole = draws(tmp_path, "whole", sampler_name, [])
    assert draws(tmp_path, "pieces", sampler_name, [7, 22]) == whole
    assert len({str(p) for p in whole}) == len(whole)          # and the trials differ from one another


def test_trial_seeds_are_in_range_and_differ():
    seeds = {trial_seed(seed, n) for seed in (0, 1, 2**32 - 1) for n in range(200)}
    assert len(seeds) == 600 and all(0 <= s < 2**32 for s in seeds)

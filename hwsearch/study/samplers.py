"""The Optuna samplers a search runs, seeded per trial so that a search can stop and go on.

An Optuna sampler draws every trial from one random generator that advances as the study
runs. A process that picks a study up again (a resumed run, a worker joining it) starts
that generator afresh, so its trials differ from the ones an uninterrupted process would
have drawn, and a resumed run would not end where an uninterrupted one ends.
`PerTrialSeed` gives each trial a sampler of its own, seeded from the run's seed and the
trial's number: what trial n draws depends only on the seed, n and the trials stored
before it, in whichever process, after however many interruptions.

QMC draws point n of one scrambled sequence (the index is kept in the study), so it is
already a function of the seed and the trial, and is not wrapped.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

SAMPLERS = {"tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
            "nsga3": optuna.samplers.NSGAIIISampler, "random": optuna.samplers.RandomSampler,
            "qmc": optuna.samplers.QMCSampler, "gp": optuna.samplers.GPSampler}
MAX_SEED = 2**32 - 1            # numpy's legacy generators, which Optuna's samplers use, take 0 .. 2^32 - 1


def trial_seed(seed: int, number: int) -> int:
    """A seed in 0 .. 2^32 - 1 for trial `number` of a run seeded with `seed`."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{number}".encode()).digest()[:4], "little")


def make_sampler(name: str, *, seed: int, trials: int) -> BaseSampler:
    """The named sampler (one of SAMPLERS), seeded per trial."""
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "tpe":
        def build(s: int) -> BaseSampler:
            return optuna.samplers.TPESampler(seed=s, multivariate=True, n_startup_trials=min(20, trials))
        return PerTrialSeed(build, seed, shared_space=True)
    else:
        def build(s: int) -> BaseSampler:
            return SAMPLERS[name](seed=s)
    return PerTrialSeed(build, seed)


class PerTrialSeed(BaseSampler):
    """A fresh sampler per trial, built by `build(trial_seed(seed, trial.number))`; the rest delegated.

    The samplers hwsearch runs keep no state between trials but their random generator
    (TPE, NSGA-II and GP read the history from the study), so a fresh one per trial
    samples as a long-lived one would, with a generator that does not depend on the past.
    Not thread-safe: one trial at a time per process, as hwsearch runs them.
    """

    def __init__(self, build: Callable[[int], BaseSampler], seed: int, *, shared_space: bool = False):
        self._build, self._seed = build, seed
        self._current: tuple[int, BaseSampler] | None = None     # (trial number, its sampler)
        # multivariate TPE's search space is the intersection of the finished trials' parameters; a fresh
        # TPESampler per trial would recompute it over the whole history every trial (a fifth of a 300-trial
        # study's time, measured): one incremental IntersectionSearchSpace serves every trial instead
        self._space = IntersectionSearchSpace(include_pruned=True) if shared_space else None   # one study's

    def _for(self, trial: FrozenTrial) -> BaseSampler:
        if self._current is None or self._current[0] != trial.number:
            self._current = (trial.number, self._build(trial_seed(self._seed, trial.number)))
        return self._current[1]

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._space is None:
            return self._for(trial).infer_relative_search_space(study, trial)
        # what TPESampler(multivariate=True) returns, from the shared incremental intersection
        return {name: d for name, d in self._space.calculate(study, use_cache=True).items() if not d.single()}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._for(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to reseed: every trial's generator is derived from the seed and its number."""

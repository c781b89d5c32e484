"""The search: an Optuna study over per-layer options, every budget a hard constraint.

A trial only reads the proxy and cost tables (no forward pass, no simulator), within the
search space of `space` (dominated options dropped). The exact optimum of the separable problem
(`knapsack.exact_optimum`) at 100%, 90% and 80% of the budgets is enqueued as a warm
start, so the sampler starts from the best plan the tables admit and maps the front
around it.

The sampler picks one Lagrange multiplier and per-layer hull shifts (`strategy="hull"`,
the default; within 1% of the exact optimum in a handful of trials; `space.Hull`), and a
plan over a budget is repaired (`space.Repair`). `strategy="repair"` samples options per
layer and repairs; `strategy="constrained"` lets Optuna's constrained samplers learn the
budgets; benchmarks/search_strategies.py measures all three.
Several objectives (`--objectives proxy,latency`) give a multi-objective study
(NSGA-II unless `--sampler` says otherwise) whose result is a front, not a single best.

`Search` holds what a trial reads, built from the tables by every process that works on
the study (the run, a resumed run, `hwsearch worker`s); `open_study` creates the study
with its queue of exactly `trials` trials (trial_queue) or loads it, and checks that the
tables hash to the ones it was started with. Samplers are seeded per trial (samplers),
so that the study's trials do not depend on which process, or how many, drew them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from cost_models import CostTable
from hwsearch.budget import Budgets
from hwsearch.compression import Option, Plan
from hwsearch.errors import HwsearchError
from hwsearch.proxy import ProxyTable
from hwsearch.study.knapsack import Optimum, exact_optimum
from hwsearch.study.samplers import make_sampler
from hwsearch.study.space import OBJECTIVES, Hull, Repair, SearchConfig, check_feasible, search_space
from hwsearch.storage import TrialSyncedJournal, trial_queue


@dataclass(frozen=True)
class Candidate:
    """One evaluated plan: its per-layer option indices, proxy score and whole-model costs."""
    trial: int
    choice: dict[str, int]     # layer name -> index into the layer's full option list
    proxy: float
    totals: dict[str, float]   # size_bytes, macs, dram_bytes, latency_s, energy_j, ...
    feasible: bool
    repaired: bool = False     # the sampled plan was over a budget and walked down into it
    source: str = "search"     # search | exact optimum | warm start

    def plan(self, options: dict[str, list[Option]]) -> Plan:
        return {name: options[name][index] for name, index in self.choice.items()}


@dataclass
class StudyResult:
    candidates: list[Candidate]
    optimum: Optimum | None                          # exact optimum of the separable problem
    space: dict[str, list[int]] = field(default_factory=dict)
    study: optuna.Study | None = None


class Search:
    """What every process working on a study needs, built from the tables: the search space,
    the exact optimum, the warm starts and the objective (table look-ups only)."""

    def __init__(self, *, proxy: ProxyTable, costs: CostTable, config: SearchConfig):
        self.proxy, self.costs, self.config = proxy, costs, config
        self.space = search_space(proxy, costs, config)
        self.optimum = check_feasible(proxy, costs, config.budgets, space=self.space)
        self.labels = {name: {proxy.options[name][i].label: i for i in self.space[name]} for name in self.space}
        self.repair = Repair(proxy, costs, config.budgets, self.space)
        self.extra = [OBJECTIVES[o] for o in config.objectives if o != "proxy"]
        self.hull = (Hull(proxy, costs, config.budgets, self.space, self.extra[0] if self.extra else None)
                     if config.strategy == "hull" else None)
        self.index_of = {name: {o.label: i for i, o in enumerate(proxy.options[name])} for name in self.space}
        self.label_of = {name: [o.label for o in proxy.options[name]] for name in self.space}

    @property
    def directions(self) -> list[str]:
        return ["minimize"] * (1 + len(self.extra))

    def sampler(self):
        name = self.config.sampler or ("nsga2" if self.extra else "tpe")
        return make_sampler(name, seed=self.config.seed, trials=self.config.trials)

    def objective(self, trial: optuna.Trial):
        config, costs, space = self.config, self.costs, self.space
        if self.hull is not None:
            sampled = self.hull(trial)
        else:
            sampled = {name: self.labels[name][trial.suggest_categorical(name, list(self.labels[name]))]
                       for name in space}
        start = trial.user_attrs.get("start")
        if start:                                       # an enqueued warm start: evaluate that plan as it is
            sampled = {name: self.index_of[name][label] for name, label in start.items()}
        totals = costs.totals(sampled)
        choice = sampled
        if config.strategy in ("repair", "hull"):
            choice = self.repair(sampled, totals)
            if choice != sampled:
                totals = costs.totals(choice)
        excess = config.budgets.excess(totals)
        # one write: every storage write is a synced journal append, the largest cost of a trial
        trial.set_user_attr("result", {"choice": {name: self.label_of[name][i] for name, i in choice.items()},
                                       "totals": totals, "repaired": choice != sampled,
                                       "feasible": all(v <= 0 for v in excess.values())})
        if config.strategy == "constrained":        # only this strategy's sampler needs to see the budgets
            for key, value in excess.items():
                trial.set_constraint(key, value)                               # feasible when <= 0
        score = float(sum(self.proxy.scores[name][index] for name, index in choice.items()))
        return score if not self.extra else (score, *(totals[k] for k in self.extra))

    def starts(self) -> list[tuple[dict, dict]]:
        """The warm starts to enqueue, as (params, user_attrs): exact optima at 100%, 90% and 80% of the budgets."""
        out = []
        for fraction in (1.0, 0.9, 0.8) if self.config.warm_start else ():
            scaled = Budgets(**{k: (None if v is None else (int(v * fraction) if k == "size_bytes" else v * fraction))
                                for k, v in vars(self.config.budgets).items()})
            start = self.optimum if fraction == 1.0 else exact_optimum(self.proxy.scores, self.costs, scaled, self.space)
            if start is not None:
                plan = {name: self.proxy.options[name][i].label for name, i in start.choice.items()}
                out.append(({} if self.hull is not None else plan,
                            {"source": "exact optimum" if fraction == 1.0 else "warm start", "start": plan}))
        return out

    def digest(self) -> str:
        """SHA-256 of the tables the trials read: processes sharing a study must agree on it."""
        digest = hashlib.sha256(json.dumps(asdict_config(self.config), sort_keys=True).encode())
        for name in self.space:
            digest.update(name.encode())
            digest.update("|".join(self.label_of[name]).encode())
            for array in (self.proxy.scores[name], self.costs.values[name], self.costs.warm[name]):
                digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        for array in (self.costs.fixed, self.costs.fixed_warm):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        digest.update(repr((self.costs.fixed_bytes, self.costs.room_bytes, self.costs.fixed_resident)).encode())
        if self.costs.conversion is not None:
            digest.update(np.ascontiguousarray(self.costs.conversion, dtype=np.float64).tobytes())
        return digest.hexdigest()


def asdict_config(config: SearchConfig) -> dict:
    """The search settings as plain values (the budgets as numbers)."""
    return {"budgets": config.budgets.limits(), "objectives": list(config.objectives), "sampler": config.sampler,
            "strategy": config.strategy, "trials": config.trials, "seed": config.seed, "warm_start": config.warm_start}


def journal_storage(path: Path) -> JournalStorage:
    return JournalStorage(TrialSyncedJournal(str(path)))


def open_study(search: Search, storage, study_name: str, record: dict | None = None) -> optuna.Study:
    """The study named `study_name`: created with its tickets if it is not in `storage` (or was
    left before its tickets were all issued), else loaded as it is. `record` is kept with it
    (user attribute "hwsearch") for workers to rebuild the tables from."""
    digest = search.digest()
    names = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if study_name in names:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=search.sampler())
        if trial_queue.issued(study):
            recorded = study.user_attrs.get("hwsearch", {}).get("tables_sha256")
            if record is not None and recorded not in (None, digest):
                raise HwsearchError(f"the tables differ from the ones study {study_name} was started with (the model "
                                    "cache, the calibration data or a library changed): its trials cannot be compared "
                                    "with new ones; restore the cache, or start a new run")
            return study
        optuna.delete_study(study_name=study_name, storage=storage)   # killed while issuing: nothing ran yet
    study = optuna.create_study(study_name=study_name, storage=storage, sampler=search.sampler(),
                                directions=search.directions)
    if record is not None:
        study.set_user_attr("hwsearch", {**record, "tables_sha256": digest})
    trial_queue.issue(study, search.starts(), search.config.trials, skip_duplicates=search.hull is None)
    return study


def run_study(*, proxy: ProxyTable, costs: CostTable, config: SearchConfig, study_name: str,
              storage_path: Path | None = None, storage=None, record: dict | None = None,
              resumed_workers: set[str] | None = None, progress=None) -> StudyResult:
    """Minimise the summed proxy (and further objectives) within every budget; returns every trial.

    `storage` is any Optuna storage (default: a journal file at `storage_path`). On a resumed
    run `resumed_workers` names its earlier processes: the trials they left running are
    evaluated again first, under their own numbers (every running trial where no heartbeat
    could belong to another live process).
    """
    search = Search(proxy=proxy, costs=costs, config=config)
    storage = storage if storage is not None else journal_storage(storage_path)
    study = open_study(search, storage, study_name, record)
    task = progress.add_task("search", total=config.trials) if progress else None

    def advance():
        if progress:
            progress.update(task, completed=len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))

    if resumed_workers is not None:
        beating = trial_queue.heartbeat_interval(storage) is not None
        for trial_id in trial_queue.stale_own(study, resumed_workers, all_running=not beating):
            trial_queue.evaluate(study, storage, trial_id, search.objective)
    trial_queue.run(study, storage, search.objective, on_trial=advance)
    if progress:
        progress.remove_task(task)
    return StudyResult(candidates(study, search.labels, proxy), search.optimum, search.space, study)


def candidates(study: optuna.Study, labels: dict[str, dict[str, int]], proxy: ProxyTable) -> list[Candidate]:
    index_of = {name: {o.label: i for i, o in enumerate(options)} for name, options in proxy.options.items()}
    out = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        result = trial.user_attrs["result"]
        choice = {name: index_of[name][label] for name, label in result["choice"].items()}
        score = float(sum(proxy.scores[name][index] for name, index in choice.items()))
        out.append(Candidate(trial.number, choice, score, result["totals"], result["feasible"], result["repaired"],
                             trial.user_attrs.get("source", "search")))
    return out


def pareto_front(cands: list[Candidate], key: str = "size_bytes") -> list[Candidate]:
    """Candidates no other beats on both `key` and proxy score, by increasing `key`."""
    front, best = [], np.inf
    for cand in sorted(cands, key=lambda c: (c.totals[key], c.proxy)):
        if cand.proxy < best:
            front.append(cand)
            best = cand.proxy
    return front


def top_feasible(cands: list[Candidate], k: int, spread_over: str | None = None) -> list[Candidate]:
    """The k feasible candidates with the lowest proxy (distinct plans); with `spread_over`, k points
    spread along the feasible front of proxy against that cost instead (multi-objective studies)."""
    feasible = [c for c in cands if c.feasible]
    pool = pareto_front(feasible, spread_over) if spread_over else sorted(feasible, key=lambda c: c.proxy)
    seen, out = set(), []
    if spread_over and len(pool) > k:
        picks = np.unique(np.round(np.linspace(0, len(pool) - 1, k)).astype(int))
        pool = [pool[i] for i in picks] + [c for i, c in enumerate(pool) if i not in set(picks)]
    for cand in pool:
        key = tuple(sorted(cand.choice.items()))
        if key not in seen:
            seen.add(key)
            out.append(cand)
        if len(out) == k:
            break
    return sorted(out, key=lambda c: c.proxy)

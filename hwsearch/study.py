"""The search: an Optuna study over per-layer options, every budget a hard constraint.

A trial only reads the proxy and cost tables (no forward pass, no simulator). Per layer,
options another option beats on the score and on every budgeted or optimised cost are
dropped first: no sensible plan uses them. The exact optimum of the separable problem
(`knapsack.exact_optimum`) at 100%, 90% and 80% of the budgets is enqueued as a warm
start, so the sampler starts from the best plan the tables admit and maps the front
around it.

The sampler does not pick options layer by layer (21 categorical choices defeat TPE: in
300 trials without warm start it ends 5-130% above the optimum): it picks one Lagrange
multiplier, which selects an option on every layer's convex hull of (score, cost), and a
shift of a few hull steps per layer (`strategy="hull"`, the default; within 1% of the
exact optimum in a handful of trials). A plan over a budget is repaired, walked down one
layer at a time along the step that costs the least score per unit of excess removed.
`strategy="repair"` samples options per layer and repairs; `strategy="constrained"` lets
Optuna's constrained samplers learn the budgets; benchmarks/search_strategies.py
measures all three.
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

from hwsearch import trial_queue
from hwsearch.budget import Budgets
from hwsearch.cost_table import CostTable
from hwsearch.errors import BudgetInfeasible, HwsearchError
from hwsearch.journal import TrialSyncedJournal
from hwsearch.knapsack import SEPARABLE, Optimum, exact_optimum, smallest
from hwsearch.options import Option, Plan
from hwsearch.proxy import ProxyTable
from hwsearch.samplers import MAX_SEED, SAMPLERS, make_sampler

OBJECTIVES = {"proxy": None, "size": "size_bytes", "latency": "latency_s", "energy": "energy_j"}


@dataclass(frozen=True)
class SearchConfig:
    budgets: Budgets
    objectives: tuple[str, ...] = ("proxy",)
    sampler: str | None = None          # None: tpe for one objective, nsga2 for several
    strategy: str = "hull"              # hull | repair | constrained (benchmarks/search_strategies.py)
    trials: int = 300
    seed: int = 0
    warm_start: bool = True             # enqueue the exact optimum (benchmarks turn it off to test the sampler)

    def __post_init__(self):
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown or not self.objectives or "proxy" not in self.objectives:
            raise HwsearchError(f"--objectives {','.join(self.objectives)!r} must list proxy and any of "
                                f"{', '.join(o for o in OBJECTIVES if o != 'proxy')}, e.g. proxy,latency")
        if len(set(self.objectives)) != len(self.objectives):
            raise HwsearchError(f"--objectives {','.join(self.objectives)!r} names an objective twice")
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise HwsearchError(f"--sampler {self.sampler!r} is not an Optuna sampler hwsearch runs: choose one of "
                                f"{', '.join(SAMPLERS)}")
        if not 0 <= self.seed <= MAX_SEED:
            raise HwsearchError(f"--seed must be between 0 and {MAX_SEED:,} (the range Optuna's samplers take), "
                                f"got {self.seed}")
        if self.strategy not in ("repair", "constrained", "hull"):
            raise HwsearchError(f"strategy {self.strategy!r} must be repair, constrained or hull")


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
class SearchResult:
    candidates: list[Candidate]
    optimum: Optimum | None                          # exact optimum of the separable problem
    space: dict[str, list[int]] = field(default_factory=dict)
    study: optuna.Study | None = None


def non_dominated(errors: np.ndarray, sizes: np.ndarray) -> list[int]:
    """Indices of options no other option beats on both error and bytes, smallest first."""
    order = np.lexsort((errors, sizes))
    kept, best_error = [], np.inf
    for index in order:
        if errors[index] < best_error:
            kept.append(int(index))
            best_error = errors[index]
    return kept


def non_dominated_all(errors: np.ndarray, costs: np.ndarray) -> list[int]:
    """Options no other option beats (or ties) on the error and on every cost column of `costs` (n, k)."""
    points = np.column_stack([errors, costs])
    kept = []
    for i in range(len(points)):
        others = np.delete(points, i, axis=0)
        beaten = np.any(np.all(others <= points[i], axis=1) & np.any(others < points[i], axis=1))
        duplicate = np.any(np.all(points[:i] == points[i], axis=1))
        if not beaten and not duplicate:
            kept.append(i)
    return sorted(kept, key=lambda i: (costs[i, 0], errors[i]))


def search_space(proxy: ProxyTable, costs: CostTable, config: SearchConfig) -> dict[str, list[int]]:
    """Per layer, the options worth trying for these budgets and objectives."""
    keys = {"size_bytes"} | set(config.budgets.limits()) | {OBJECTIVES[o] for o in config.objectives if OBJECTIVES[o]}
    columns = [SEPARABLE[k] for k in ("size_bytes", "latency_s", "energy_j") if k in keys]
    if columns == ["weight_bytes"]:
        return {name: non_dominated(proxy.scores[name], costs.column(name, "weight_bytes")) for name in proxy.options}
    return {name: non_dominated_all(proxy.scores[name], np.column_stack([costs.column(name, c) for c in columns]))
            for name in proxy.options}


def check_feasible(proxy: ProxyTable, costs: CostTable, budgets: Budgets, space: dict[str, list[int]]) -> Optimum:
    """The exact optimum; BudgetInfeasible naming the smallest achievable value of each budget if none."""
    found = exact_optimum(proxy.scores, costs, budgets, space)
    if found is not None:
        return found
    limits = budgets.limits()
    if len(limits) == 1:
        key = next(iter(limits))
        low = smallest(costs, budgets, key, space)
        if key == "size_bytes":
            raise BudgetInfeasible(
                f"budget {budgets.describe(key)} cannot be met: the smallest option of every layer still gives a "
                f"{int(low):,}-byte file; raise the budget to at least {int(low):,} bytes")
        flag = "--" + key.split("_")[0]
        raise BudgetInfeasible(f"{flag} {budgets.describe(key)} cannot be met: the cheapest plan needs "
                               f"{budgets.describe(key, low)}; raise it to at least that")
    parts = []
    for key in limits:
        low = smallest(costs, budgets, key, space)
        name = {"size_bytes": "--budget", "latency_s": "--latency", "energy_j": "--energy"}[key]
        parts.append(f"{name} {budgets.describe(key, low)}" if low is not None
                     else f"{name}: none (the others cannot be met at all)")
    raise BudgetInfeasible("these budgets cannot be met together; the smallest each can be, given the others, is "
                           + ", ".join(parts) + ": relax one of them")


class _Repair:
    """Walk an over-budget plan down, one layer step at a time, least score per unit of excess removed.

    Vectorised over every (layer, option) of the space; the separable part of the totals is
    updated step by step and the whole-plan totals are checked when it fits.
    """

    def __init__(self, proxy: ProxyTable, costs: CostTable, budgets: Budgets, space: dict[str, list[int]]):
        self.costs, self.budgets = costs, budgets
        self.keys = list(budgets.limits())
        self.limits = np.array([budgets.limits()[k] for k in self.keys])
        self.names = list(space)
        self.layer = np.concatenate([np.full(len(space[n]), i) for i, n in enumerate(self.names)])
        self.option = np.concatenate([np.asarray(space[n]) for n in self.names])
        self.cost = np.concatenate([np.column_stack([costs.column(n, SEPARABLE[k]) for k in self.keys])[space[n]]
                                    for n in self.names])                     # (pairs, budgets)
        self.error = np.concatenate([proxy.scores[n][space[n]] for n in self.names])
        self.where = {(n, int(o)): j for j, (n, o) in enumerate(zip((self.names[i] for i in self.layer), self.option))}

    def __call__(self, choice: dict[str, int], totals: dict[str, float]) -> dict[str, int]:
        choice = dict(choice)
        if all(totals[k] <= v for k, v in zip(self.keys, self.limits)):
            return choice
        current = np.array([self.where.get((n, choice[n]), -1) for n in self.names])
        if np.any(current < 0):                   # a plan from outside the space: repair from its nearest
            return choice
        level = np.array([totals[k] for k in self.keys], dtype=float)
        for _ in range(20 * len(self.names)):
            excess = level - self.limits
            if np.all(excess <= 0):
                totals = self.costs.totals(choice)
                level = np.array([totals[k] for k in self.keys], dtype=float)
                if np.all(level <= self.limits):
                    return choice
                continue
            over = np.maximum(excess, 0) / self.limits
            saved = (self.cost[current[self.layer]] - self.cost) / self.limits        # (pairs, budgets)
            gain = np.sum(np.minimum(saved, over) * (over > 0), axis=1)
            worse = self.error - self.error[current[self.layer]]
            with np.errstate(divide="ignore", invalid="ignore"):
                price = np.where(gain > 0, worse / gain, np.inf)
            j = int(np.argmin(price))
            if not np.isfinite(price[j]):
                return choice
            level = level - self.cost[current[self.layer[j]]] + self.cost[j]
            current[self.layer[j]] = j
            choice[self.names[self.layer[j]]] = int(self.option[j])
        return choice


class _Hull:
    """A parametrisation that starts near the optimum: one Lagrange multiplier and a shift per layer.

    Per layer, the options on the lower convex hull of (score, a cost) are the ones an
    optimum uses; a multiplier lambda picks on every hull the option that minimises
    score + lambda x cost, and a shift of -2..2 steps moves each layer along its hull from
    there. The sampler learns lambda and the shifts; repair keeps the budgets. The cost is
    the first budget's, or the objective a multi-objective study trades the score against
    (so that its front spreads along that objective).
    """

    def __init__(self, proxy: ProxyTable, costs: CostTable, budgets: Budgets, space: dict[str, list[int]],
                 objective: str | None = None):
        if objective is None:
            key, limit = next(iter(budgets.limits().items()))
        else:                       # no budget to scale by: the plan of every layer's costliest option
            key = objective
            limit = budgets.limits().get(key) or sum(float(costs.column(n, SEPARABLE[key]).max()) for n in space)
        self.hulls, self.costs, self.errors = {}, {}, {}
        for name, indices in space.items():
            cost = costs.column(name, SEPARABLE[key]) / limit
            order = sorted(indices, key=lambda i: (cost[i], proxy.scores[name][i]))
            hull = lower_hull(non_dominated(proxy.scores[name][order], cost[order]), cost[order],
                              proxy.scores[name][order])
            chosen = np.asarray(order)[hull]
            self.hulls[name], self.costs[name], self.errors[name] = chosen, cost[chosen], proxy.scores[name][chosen]

    def __call__(self, trial: optuna.Trial) -> dict[str, int]:
        weight = trial.suggest_float("lambda", 1e-4, 1e4, log=True)
        choice = {}
        for name, hull in self.hulls.items():
            base = int(np.argmin(self.errors[name] + weight * self.costs[name]))
            shift = trial.suggest_int(f"shift:{name}", -2, 2)
            choice[name] = int(hull[int(np.clip(base + shift, 0, len(hull) - 1))])
        return choice


class Search:
    """What every process working on a study needs, built from the tables: the search space,
    the exact optimum, the warm starts and the objective (table look-ups only)."""

    def __init__(self, *, proxy: ProxyTable, costs: CostTable, config: SearchConfig):
        self.proxy, self.costs, self.config = proxy, costs, config
        self.space = search_space(proxy, costs, config)
        self.optimum = check_feasible(proxy, costs, config.budgets, space=self.space)
        self.labels = {name: {proxy.options[name][i].label: i for i in self.space[name]} for name in self.space}
        self.repair = _Repair(proxy, costs, config.budgets, self.space)
        self.extra = [OBJECTIVES[o] for o in config.objectives if o != "proxy"]
        self.hull = (_Hull(proxy, costs, config.budgets, self.space, self.extra[0] if self.extra else None)
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
              resumed_workers: set[str] | None = None, progress=None) -> SearchResult:
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
    return SearchResult(candidates(study, search.labels, proxy), search.optimum, search.space, study)


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


def lower_hull(indices: list[int], sizes: np.ndarray, errors: np.ndarray) -> list[int]:
    """The options on the lower convex hull of (bytes, error), smallest first.

    Along the hull, each step to a larger option buys less error per byte than the one
    before, which is what makes the greedy below take the cheapest error per byte first.
    """
    hull: list[int] = []
    for c in indices:                                   # by increasing size, decreasing error
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b if it lies on or above the segment a-c
            if (errors[b] - errors[a]) * (sizes[c] - sizes[a]) >= (errors[c] - errors[a]) * (sizes[b] - sizes[a]):
                hull.pop()
            else:
                break
        hull.append(c)
    return hull

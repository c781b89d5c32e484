"""What a trial may choose, and how a sampled plan is kept within the budgets.

Per layer, options another option beats on the score and on every budgeted or optimised
cost are dropped first (`search_space`): no sensible plan uses them. `check_feasible`
finds the exact optimum of the separable problem, or says in one line what each budget
would have to be. The sampler does not pick options layer by layer (21 categorical choices
defeat TPE: in 300 trials without warm start it ends 5-130% above the optimum): `Hull`
picks one Lagrange multiplier, which selects an option on every layer's convex hull of
(score, cost), and a shift of a few hull steps per layer; a plan over a budget is walked
down by `Repair`, one layer at a time along the step that costs the least score per unit
of excess removed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import optuna

from cost_models import CostTable
from hwsearch.budget import Budgets
from hwsearch.errors import BudgetInfeasible, HwsearchError
from hwsearch.proxy import ProxyTable
from hwsearch.study.knapsack import SEPARABLE, Optimum, exact_optimum, smallest
from hwsearch.study.samplers import MAX_SEED, SAMPLERS

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


class Repair:
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


class Hull:
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

"""The search: an Optuna study over per-layer options, the size budget a hard constraint.

A trial only reads the proxy and cost tables (no forward pass, no simulator). Per
layer, options dominated in (proxy error, bytes) are dropped first: no sensible plan
uses them. A greedy multiple-choice-knapsack plan (best error saved per byte) is
enqueued as a warm start so the sampler begins inside the feasible region.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from hwsearch.cost_table import CostTable
from hwsearch.errors import BudgetInfeasible
from hwsearch.budget import format_size
from hwsearch.options import Option, Plan
from hwsearch.proxy import ProxyTable


@dataclass(frozen=True)
class Candidate:
    """One evaluated plan: its per-layer option indices, proxy error and whole-model costs."""
    trial: int
    choice: dict[str, int]     # layer name -> index into the layer's full option list
    proxy: float
    totals: dict[str, float]   # size_bytes, macs, dram_bytes, sram_bytes, latency_s, energy_j
    feasible: bool

    def plan(self, options: dict[str, list[Option]]) -> Plan:
        return {name: options[name][index] for name, index in self.choice.items()}


def non_dominated(errors: np.ndarray, sizes: np.ndarray) -> list[int]:
    """Indices of options no other option beats on both error and bytes, smallest first."""
    order = np.lexsort((errors, sizes))
    kept, best_error = [], np.inf
    for index in order:
        if errors[index] < best_error:
            kept.append(int(index))
            best_error = errors[index]
    return kept


def check_feasible(costs: CostTable, budget_bytes: int) -> None:
    """Raise BudgetInfeasible unless the smallest option of every layer fits the budget."""
    smallest = costs.totals({name: int(np.argmin(costs.column(name, "weight_bytes"))) for name in costs.values})
    if smallest["size_bytes"] > budget_bytes:
        raise BudgetInfeasible(
            f"budget {format_size(budget_bytes)} ({budget_bytes:,} bytes) cannot be met: the smallest option of "
            f"every layer still gives a {int(smallest['size_bytes']):,}-byte file; raise the budget to at least "
            f"{int(smallest['size_bytes']):,} bytes")


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


def greedy_plan(space: dict[str, list[int]], proxy: ProxyTable, costs: CostTable, budget_bytes: int) -> dict[str, int]:
    """Greedy multiple-choice knapsack: the warm start of the study.

    Start from every layer's lowest-error option; step down each layer's convex hull,
    always taking the step that adds the least error per byte saved, until the plan fits;
    then spend the bytes left over on the single-layer upgrades that remove the most error.
    """
    sizes = {name: costs.column(name, "weight_bytes") for name in space}
    hulls = {name: lower_hull(space[name], sizes[name], proxy.errors[name]) for name in space}
    position = {name: len(hull) - 1 for name, hull in hulls.items()}
    choice = {name: hull[-1] for name, hull in hulls.items()}
    size = costs.totals(choice)["size_bytes"]
    while size > budget_bytes:
        steps = []
        for name, hull in hulls.items():
            if position[name] > 0:
                here, there = hull[position[name]], hull[position[name] - 1]
                saved = sizes[name][here] - sizes[name][there]
                steps.append(((proxy.errors[name][there] - proxy.errors[name][here]) / saved, name, saved))
        if not steps:
            break
        _, name, saved = min(steps)
        position[name] -= 1
        choice[name] = hulls[name][position[name]]
        size -= saved
    while True:                                          # use the slack the last step left
        best = None
        for name, indices in space.items():
            for index in indices:
                extra = sizes[name][index] - sizes[name][choice[name]]
                gain = proxy.errors[name][choice[name]] - proxy.errors[name][index]
                if gain > 0 and size + extra <= budget_bytes and (best is None or gain > best[0]):
                    best = (gain, name, index, extra)
        if best is None:
            return choice
        _, name, index, extra = best
        choice[name] = index
        size += extra


def run_study(*, proxy: ProxyTable, costs: CostTable, budget_bytes: int, n_trials: int, storage_path: Path,
              study_name: str, seed: int = 0, progress=None) -> tuple[optuna.Study, list[Candidate]]:
    """Minimise the summed proxy error subject to file size <= budget; returns the study and every trial."""
    check_feasible(costs, budget_bytes)
    names = list(proxy.options)
    space = {name: non_dominated(proxy.errors[name], costs.column(name, "weight_bytes")) for name in names}
    labels = {name: {proxy.options[name][i].label: i for i in space[name]} for name in names}

    def objective(trial: optuna.Trial) -> float:
        choice = {name: labels[name][trial.suggest_categorical(name, list(labels[name]))] for name in names}
        totals = costs.totals(choice)
        trial.set_user_attr("totals", totals)
        trial.set_constraint("size_bytes", totals["size_bytes"] - budget_bytes)   # feasible when <= 0
        return float(sum(proxy.errors[name][index] for name, index in choice.items()))

    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=min(20, n_trials))
    storage = JournalStorage(JournalFileBackend(str(storage_path)))
    study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler,
                                direction="minimize", load_if_exists=True)
    for fraction in (1.0, 0.9, 0.8):   # the greedy plan at and a little under the budget
        start = greedy_plan(space, proxy, costs, int(budget_bytes * fraction))
        study.enqueue_trial({name: proxy.options[name][i].label for name, i in start.items()}, skip_if_exists=True)
    task = progress.add_task("search", total=n_trials) if progress else None
    callbacks = [lambda study, trial: progress.advance(task)] if progress else []
    study.optimize(objective, n_trials=n_trials, callbacks=callbacks)
    if progress:
        progress.remove_task(task)
    return study, candidates(study, labels)


def candidates(study: optuna.Study, labels: dict[str, dict[str, int]]) -> list[Candidate]:
    out = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        choice = {name: labels[name][label] for name, label in trial.params.items()}
        out.append(Candidate(trial.number, choice, trial.value, trial.user_attrs["totals"],
                             all(value <= 0 for value in trial.constraints.values())))
    return out


def pareto_front(cands: list[Candidate]) -> list[Candidate]:
    """Candidates no other beats on both size and proxy error, by increasing size."""
    front, best = [], np.inf
    for cand in sorted(cands, key=lambda c: (c.totals["size_bytes"], c.proxy)):
        if cand.proxy < best:
            front.append(cand)
            best = cand.proxy
    return front


def top_feasible(cands: list[Candidate], k: int) -> list[Candidate]:
    """The k feasible candidates with the lowest proxy error, distinct plans only."""
    seen, out = set(), []
    for cand in sorted((c for c in cands if c.feasible), key=lambda c: c.proxy):
        key = tuple(sorted(cand.choice.items()))
        if key not in seen:
            seen.add(key)
            out.append(cand)
        if len(out) == k:
            break
    return out

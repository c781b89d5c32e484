"""Plans a practitioner would choose without a search, priced from the same tables.

They are marked on every run's Pareto plot and retrained side by side with hwsearch's
choice in benchmarks/search_quality.py:

- uniform: the same option (rank fraction, sparsity, bits, or a codebook) in every layer; of those that
  meet the budgets, the one with the best proxy score.
- uniform, first and last fp32: the same, with the first and last layers left as they
  are (common practice: they are small and sensitive).
- greedy: a per-layer allocation in the style of AIMET's compression-ratio selection: from
  the best option everywhere, step down each layer's convex hull of (score, cost), always
  the step that adds the least score per unit of cost saved, until the plan fits; then
  spend what is left on the upgrades that remove the most score.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from hwsearch.budget import Budgets
from cost_models import CostTable
from hwsearch.study.knapsack import SEPARABLE
from hwsearch.graph import Layer
from hwsearch.compression.grid import BITS, CODEBOOK_BITS, RANK_FRACTIONS, SPARSITIES
from hwsearch.compression import Option
from hwsearch.proxy import ProxyTable
from hwsearch.study.space import lower_hull, non_dominated

Choice = dict[str, int]


def fits(costs: CostTable, budgets: Budgets, choice: Choice) -> bool:
    totals = costs.totals(choice)
    return all(totals[key] <= limit for key, limit in budgets.limits().items())


def _uniform_index(layer: Layer, options: list[Option], template: Option, fraction: float | None) -> int:
    """The layer's option like `template`, at rank `fraction` of each group's full rank; full rank where
    the layer's grid has no such rank (the rank would not save weights)."""
    rows, cols = layer.matrix_shape
    groups = max(1, layer.groups)
    rank = None if fraction is None else max(1, round(min(rows // groups, cols) * fraction))
    ranked = replace(template, rank=rank, method=None)
    return options.index(ranked if ranked in options else template)


def _templates() -> list[tuple[Option, float | None]]:
    """One option for every layer: uniform codes at any rank fraction, or a codebook at full rank."""
    uniform = [(Option(None, sparsity, bits), fraction) for fraction in (None, *RANK_FRACTIONS)
               for sparsity in SPARSITIES for bits in BITS]
    return uniform + [(Option(sparsity=sparsity, bits=bits, codebook=16), None) for sparsity in SPARSITIES
                      for bits in CODEBOOK_BITS]


def uniform_plan(layers: list[Layer], proxy: ProxyTable, costs: CostTable, budgets: Budgets, *,
                 keep_ends: bool = False) -> Choice | None:
    """The best plan that uses one option in every layer (None: no such plan fits)."""
    best, best_score = None, np.inf
    for template, fraction in _templates():
        if any(template not in proxy.options[l.name] for l in layers):      # a grid without it (e.g. classic)
            continue
        choice = {l.name: _uniform_index(l, proxy.options[l.name], template, fraction) for l in layers}
        if keep_ends:
            for layer in (layers[0], layers[-1]):
                choice[layer.name] = proxy.options[layer.name].index(Option())
        score = sum(proxy.scores[name][i] for name, i in choice.items())
        if score < best_score and fits(costs, budgets, choice):
            best, best_score = choice, score
    return best


def greedy_plan(space: dict[str, list[int]], proxy: ProxyTable, costs: CostTable, budgets: Budgets) -> Choice | None:
    """AIMET-style greedy allocation over the first budget's per-layer cost (None: it found no plan that fits)."""
    key, _ = next(iter(budgets.limits().items()))
    column = {name: costs.column(name, SEPARABLE[key]) for name in space}
    hulls = {}
    for name, indices in space.items():       # the layer's lower convex hull of (cost, score), cheapest first
        order = np.array(sorted(indices, key=lambda i: (column[name][i], proxy.scores[name][i])))
        kept = non_dominated(proxy.scores[name][order], column[name][order])
        hulls[name] = [int(order[i]) for i in lower_hull(kept, column[name][order], proxy.scores[name][order])]
    position = {name: len(hull) - 1 for name, hull in hulls.items()}
    choice = {name: hull[-1] for name, hull in hulls.items()}
    while not fits(costs, budgets, choice):
        steps = []
        for name, hull in hulls.items():
            if position[name] > 0:
                here, there = hull[position[name]], hull[position[name] - 1]
                saved = column[name][here] - column[name][there]
                if saved > 0:
                    steps.append(((proxy.scores[name][there] - proxy.scores[name][here]) / saved, name))
        if not steps:
            return None
        _, name = min(steps)
        position[name] -= 1
        choice[name] = hulls[name][position[name]]
    while True:                                          # use the slack the last step left
        best = None
        for name, indices in space.items():
            here = choice[name]
            for index in indices:
                gain = proxy.scores[name][here] - proxy.scores[name][index]
                if gain > 0 and (best is None or gain > best[0]) and fits(costs, budgets, {**choice, name: index}):
                    best = (gain, name, index)
        if best is None:
            return choice
        _, name, index = best
        choice[name] = index


def baseline_plans(layers: list[Layer], proxy: ProxyTable, costs: CostTable, budgets: Budgets,
                   space: dict[str, list[int]]) -> dict[str, Choice]:
    """Every baseline that finds a plan within the budgets, by label."""
    plans = {"uniform": uniform_plan(layers, proxy, costs, budgets),
             "uniform, first and last fp32": uniform_plan(layers, proxy, costs, budgets, keep_ends=True),
             "greedy": greedy_plan(space, proxy, costs, budgets)}
    return {label: choice for label, choice in plans.items() if choice is not None}

"""What the search reads on one target: the prepared tables with the target's costs.

The cost table prices every (layer, option) on the target (from the exact bytes the proxy
pass measured); the baselines are priced from the per-layer tables; with --structured,
channel groups become single units of the search.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from cost_models import CostTable, build_cost_table, make_cost_model
from hwsearch.budget import Budgets
from hwsearch.compression import Option
from hwsearch.config import RunConfig
from hwsearch.graph import Layer
from hwsearch.proxy import ProxyTable
from hwsearch.runs.prepared import Prepared, prepare_or_reuse
from hwsearch.runs.progress import say_to
from hwsearch.study import Candidate, SearchConfig, baseline_index, baseline_plans, merge_units, search_space, search_units
from hwsearch.workloads import Workload


@dataclass
class Tables:
    """What the search reads on one target: the prepared tables with the target's costs (and, with
    --structured, channel groups merged into single units of the search)."""
    prepared: Prepared
    options: dict[str, list[Option]]  # per search unit: a layer, or a channel group
    costs: CostTable
    proxy: ProxyTable
    baseline_choice: dict[str, int]   # per unit: the uncompressed option
    baselines: dict[str, Candidate]   # plans chosen without a search (uniform, greedy), priced per layer

    @property
    def workload(self) -> Workload:
        return self.prepared.workload

    @property
    def layers(self) -> list[Layer]:
        return self.prepared.layers

    @property
    def names(self) -> list[str]:
        return self.prepared.names

    @property
    def calibration(self) -> torch.Tensor:
        return self.prepared.calibration


def hardware_tables(prepared: Prepared, target, search: SearchConfig, config: RunConfig, progress=None,
                    say=None) -> Tables:
    """The cost table of every (layer, option) on `target`, the baselines, and the search units."""
    say = say or say_to(progress)
    layers, options, proxy, model = prepared.layers, prepared.options, prepared.proxy, prepared.workload.model
    cost_model = make_cost_model("analytical", target)
    costs = build_cost_table(cost_model, layers, options, prepared.fixed_bytes, prepared.graph, proxy.sizes)
    # plans chosen without a search, from the per-layer tables (before channel groups merge layers into units)
    baselines = {label: Candidate(-1, choice, float(sum(proxy.scores[n][i] for n, i in choice.items())),
                                  costs.totals(choice), True, source=label)
                 for label, choice in baseline_plans(layers, proxy, costs, search.budgets,
                                                     search_space(proxy, costs, search)).items()}
    if config.structured:             # channel groups become single units of the search
        units = search_units(model, prepared.graph)
        proxy, costs = merge_units(model, layers, units, proxy, costs, cost_model, prepared.calibration, progress)
        options = proxy.options
        say(f"structured pruning: {len(units)} channel groups searched as units")
    baseline_choice = {key: baseline_index(choices) for key, choices in options.items()}
    return Tables(prepared, options, costs, proxy, baseline_choice, baselines)


def search_config(config: RunConfig) -> SearchConfig:
    """The study's settings of a run config (budgets parsed)."""
    budgets = Budgets.parse(size=config.budget, latency=config.latency, energy=config.energy)
    return SearchConfig(budgets, objectives=tuple(config.objectives.split(",")), sampler=config.sampler,
                        trials=config.trials, seed=config.seed)


def build_tables(config: RunConfig, target, progress, say, prepared: Prepared | None = None) -> Tables:
    """The workload (cached model, or the user's), its layer graph, options, proxy and cost tables."""
    prepared = prepare_or_reuse(config, progress, say, prepared)
    return hardware_tables(prepared, target, search_config(config), config, progress, say)

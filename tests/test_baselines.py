"""Baseline plans: uniform, uniform with the first and last layers fp32, and the AIMET-style greedy."""
import itertools

import pytest
import torch

from cost_models import build_cost_table, load_target, make_cost_model
from hwsearch.export import artifact
from hwsearch.study.baselines import baseline_plans, fits, greedy_plan, uniform_plan
from hwsearch.budget import Budgets
from hwsearch.graph import LayerGraph
from hwsearch.compression import Option, layer_options
from hwsearch.proxy import build_proxy_table
from hwsearch.study import SearchConfig, search_space


@pytest.fixture
def tables(tiny, example):
    graph = LayerGraph.trace(tiny, example)
    layers = graph.compressible()
    options = {l.name: layer_options(l) for l in layers}
    fixed = artifact.fixed_bytes(tiny, model_spec={"name": "tiny", "kwargs": {}}, layer_names=list(options))
    costs = build_cost_table(make_cost_model("analytical", load_target("cortex-a76")), layers, options, fixed, graph)
    proxy = build_proxy_table(tiny, layers, options, torch.randn(32, 1, 8, 8))
    fp32 = costs.totals({n: options[n].index(Option()) for n in options})["size_bytes"]
    return layers, proxy, costs, int(fp32)


def test_uniform_uses_one_option_everywhere_and_is_the_best_such_plan_that_fits(tables):
    layers, proxy, costs, fp32 = tables
    budgets = Budgets(size_bytes=fp32 // 5)
    choice = uniform_plan(layers, proxy, costs, budgets)
    plan = {n: proxy.options[n][i] for n, i in choice.items()}
    assert fits(costs, budgets, choice)
    assert len({(o.sparsity, o.bits) for o in plan.values()}) == 1
    score = sum(proxy.scores[n][i] for n, i in choice.items())
    for sparsity, bits in itertools.product((0.0, 0.5, 0.75, 0.9), (32, 8, 6, 4)):   # no full-rank uniform plan beats it
        other = {n: proxy.options[n].index(Option(None, sparsity, bits)) for n in proxy.options}
        if fits(costs, budgets, other):
            assert score <= sum(proxy.scores[n][i] for n, i in other.items()) + 1e-12


def test_keeping_the_ends_leaves_the_first_and_last_layers_fp32(tables):
    layers, proxy, costs, fp32 = tables
    choice = uniform_plan(layers, proxy, costs, Budgets(size_bytes=int(fp32 * 0.95)), keep_ends=True)
    assert proxy.options[layers[0].name][choice[layers[0].name]] == Option()
    assert proxy.options[layers[-1].name][choice[layers[-1].name]] == Option()
    assert uniform_plan(layers, proxy, costs, Budgets(size_bytes=fp32 // 50), keep_ends=True) is None   # fc alone is 1/2


def test_greedy_fits_and_is_near_the_brute_force_optimum(tables):
    layers, proxy, costs, fp32 = tables
    names = list(proxy.options)
    for budget in (fp32 // 3, fp32 // 6, fp32 // 12):
        budgets = Budgets(size_bytes=budget)
        space = search_space(proxy, costs, SearchConfig(budgets))
        plan = greedy_plan(space, proxy, costs, budgets)
        assert costs.totals(plan)["size_bytes"] <= budget
        score = sum(proxy.scores[n][i] for n, i in plan.items())
        optimum = min(sum(proxy.scores[n][i] for n, i in zip(names, combo))
                      for combo in itertools.product(*(space[n] for n in names))
                      if costs.totals(dict(zip(names, combo)))["size_bytes"] <= budget)
        assert optimum <= score <= optimum * 1.10 + 1e-9


def test_greedy_meets_a_latency_budget_too(tables):
    layers, proxy, costs, fp32 = tables
    fastest = costs.totals({n: int(costs.column(n, "latency_s").argmin()) for n in proxy.options})["latency_s"]
    budgets = Budgets(latency_s=fastest * 1.2)
    plan = greedy_plan(search_space(proxy, costs, SearchConfig(budgets)), proxy, costs, budgets)
    assert plan is not None and costs.totals(plan)["latency_s"] <= fastest * 1.2


def test_baselines_that_cannot_fit_are_left_out(tables):
    layers, proxy, costs, fp32 = tables
    budgets = Budgets(size_bytes=fp32 // 50)
    plans = baseline_plans(layers, proxy, costs, budgets, search_space(proxy, costs, SearchConfig(budgets)))
    assert "uniform, first and last fp32" not in plans
    assert all(fits(costs, budgets, choice) for choice in plans.values())

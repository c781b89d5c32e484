import numpy as np
import optuna
import pytest
import torch

from cost_models import build_cost_table, load_target, make_cost_model
from hwsearch.export import artifact
from hwsearch.errors import BudgetInfeasible
from hwsearch.graph import LayerGraph
from hwsearch.compression import Option, layer_options
from hwsearch.proxy import build_proxy_table
import itertools

from hwsearch.budget import Budgets
from hwsearch.study import exact_optimum, smallest
from hwsearch.study import (SearchConfig, lower_hull, non_dominated, pareto_front, run_study,
                            search_space, top_feasible)

SPEC = {"name": "tiny", "kwargs": {}}


@pytest.fixture
def tables(tiny, example):
    layers = LayerGraph.trace(tiny, example).compressible()
    options = {l.name: layer_options(l) for l in layers}
    fixed = artifact.fixed_bytes(tiny, model_spec=SPEC, layer_names=[l.name for l in layers])
    graph = LayerGraph.trace(tiny, example)
    costs = build_cost_table(make_cost_model("analytical", load_target("cortex-a76")), layers, options, fixed, graph)
    proxy = build_proxy_table(tiny, layers, options, torch.randn(32, 1, 8, 8))
    fp32 = costs.totals({n: options[n].index(Option()) for n in options})["size_bytes"]
    return proxy, costs, int(fp32)


def test_non_dominated_keeps_the_lower_left_staircase():
    errors = np.array([0.0, 0.1, 0.05, 0.3, 0.2])
    sizes = np.array([100, 50, 60, 10, 40])
    assert non_dominated(errors, sizes) == [3, 4, 1, 2, 0]
    assert non_dominated(np.array([0.1, 0.2]), np.array([10, 20])) == [0]


def test_lower_hull_drops_points_above_the_chords():
    sizes = np.array([10, 20, 30, 40, 50])
    errors = np.array([1.0, 0.9, 0.3, 0.2, 0.0])     # (20, 0.9) and (40, 0.2) lie above the hull
    assert lower_hull([0, 1, 2, 3, 4], sizes, errors) == [0, 2, 4]


def brute_force(proxy, costs, budgets, space):
    names = list(space)
    best = None
    for combo in itertools.product(*(space[n] for n in names)):
        choice = dict(zip(names, combo))
        totals = costs.totals(choice)
        if all(totals[k] <= v for k, v in budgets.limits().items()):
            score = sum(proxy.scores[n][i] for n, i in choice.items())
            best = score if best is None or score < best else best
    return best


def test_the_exact_optimum_is_the_brute_force_optimum(tables):
    proxy, costs, fp32 = tables
    space = search_space(proxy, costs, SearchConfig(Budgets(size_bytes=fp32)))
    for budget in (fp32 // 2, fp32 // 5, fp32 // 12):
        budgets = Budgets(size_bytes=budget)
        found = exact_optimum(proxy.scores, costs, budgets, space)
        assert found.totals["size_bytes"] <= budget
        assert found.score == pytest.approx(brute_force(proxy, costs, budgets, space))
        assert found.gap == 0 and "exact" in found.method


def test_with_two_budgets_the_gap_is_certified(tables):
    proxy, costs, fp32 = tables
    space = search_space(proxy, costs, SearchConfig(Budgets(size_bytes=fp32, latency_s=1.0)))
    quickest = smallest(costs, Budgets(size_bytes=fp32 // 4, latency_s=1.0), "latency_s", space)
    budgets = Budgets(size_bytes=fp32 // 4, latency_s=quickest * 1.05)        # binds, and can be met
    found = exact_optimum(proxy.scores, costs, budgets, space)
    truth = brute_force(proxy, costs, budgets, space)
    assert found.totals["size_bytes"] <= budgets.size_bytes and found.totals["latency_s"] <= budgets.latency_s
    assert found.lower_bound <= truth + 1e-9 <= found.score + 1e-9       # the optimum lies inside the gap


def test_study_respects_the_budget_and_stores_its_trials(tables, tmp_path):
    proxy, costs, fp32 = tables
    budget = fp32 // 5
    config = SearchConfig(Budgets(size_bytes=budget), trials=40)
    result = run_study(proxy=proxy, costs=costs, config=config, storage_path=tmp_path / "study.journal",
                       study_name="t")
    cands = result.candidates
    assert len(cands) == 40 and (tmp_path / "study.journal").stat().st_size > 0
    for cand in cands:
        assert cand.feasible == (cand.totals["size_bytes"] <= budget)
        assert cand.proxy == pytest.approx(sum(proxy.scores[n][i] for n, i in cand.choice.items()))
    assert all(c.feasible for c in cands)                 # repair walks every sampled plan into the budget
    assert cands[0].source == "exact optimum" and cands[0].proxy == pytest.approx(result.optimum.score)
    best = top_feasible(cands, 3)
    assert 1 <= len(best) <= 3 and all(c.feasible for c in best)
    assert [c.proxy for c in best] == sorted(c.proxy for c in best)
    reloaded = optuna.load_study(study_name="t", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.journal"))))
    assert len(reloaded.trials) == 40


def test_without_repair_the_sampler_sees_the_constraints(tables, tmp_path):
    proxy, costs, fp32 = tables
    config = SearchConfig(Budgets(size_bytes=fp32 // 5), trials=30, strategy="constrained", warm_start=False)
    cands = run_study(proxy=proxy, costs=costs, config=config, storage_path=tmp_path / "s.journal",
                      study_name="c").candidates
    assert not any(c.repaired for c in cands)
    for cand in cands:
        assert cand.feasible == (cand.totals["size_bytes"] <= fp32 // 5)


def test_a_latency_budget_binds_like_a_size_budget(tables, tmp_path):
    proxy, costs, fp32 = tables
    space = search_space(proxy, costs, SearchConfig(Budgets(latency_s=1.0)))
    fast = smallest(costs, Budgets(latency_s=1.0), "latency_s", space) * 1.02
    config = SearchConfig(Budgets(latency_s=fast), trials=20)
    cands = run_study(proxy=proxy, costs=costs, config=config, storage_path=tmp_path / "l.journal",
                      study_name="l").candidates
    assert all(c.feasible and c.totals["latency_s"] <= fast for c in cands)


def test_two_objectives_give_a_front(tables, tmp_path):
    proxy, costs, fp32 = tables
    config = SearchConfig(Budgets(size_bytes=fp32 // 3), objectives=("proxy", "latency"), trials=30)
    result = run_study(proxy=proxy, costs=costs, config=config, storage_path=tmp_path / "m.journal",
                       study_name="m")
    assert len(result.study.directions) == 2
    spread = top_feasible(result.candidates, 3, spread_over="latency_s")
    assert len(spread) >= 2 and len({c.totals["latency_s"] for c in spread}) == len(spread)


def test_pareto_front_is_monotone(tables, tmp_path):
    proxy, costs, fp32 = tables
    cands = run_study(proxy=proxy, costs=costs, config=SearchConfig(Budgets(size_bytes=fp32 // 4), trials=30),
                      storage_path=tmp_path / "s.journal", study_name="p").candidates
    front = pareto_front(cands)
    sizes = [c.totals["size_bytes"] for c in front]
    assert sizes == sorted(sizes) and [c.proxy for c in front] == sorted((c.proxy for c in front), reverse=True)
    for cand in cands:   # every trial is matched or beaten by a point of the front
        assert any(f.totals["size_bytes"] <= cand.totals["size_bytes"] and f.proxy <= cand.proxy for f in front)


def test_infeasible_budget_says_the_smallest_possible(tables, tmp_path):
    proxy, costs, _ = tables
    with pytest.raises(BudgetInfeasible, match="raise the budget to at least"):
        run_study(proxy=proxy, costs=costs, config=SearchConfig(Budgets(size_bytes=100), trials=5),
                  storage_path=tmp_path / "s.journal", study_name="x")


def test_infeasible_budgets_together_name_the_smallest_of_each_given_the_others(tables, tmp_path):
    proxy, costs, fp32 = tables
    budgets = Budgets(size_bytes=fp32 // 10, latency_s=1e-9)
    with pytest.raises(BudgetInfeasible, match="--budget: none .*, --latency [0-9.]+ us: relax one of them"):
        run_study(proxy=proxy, costs=costs, config=SearchConfig(budgets, trials=5),
                  storage_path=tmp_path / "s.journal", study_name="x")


@pytest.mark.parametrize("kwargs, message", [
    ({"objectives": ("latency",)}, "must list proxy"),
    ({"objectives": ("proxy", "speed")}, "must list proxy and any of size, latency, energy"),
    ({"sampler": "magic"}, "choose one of tpe, nsga2"),
])
def test_bad_search_settings_are_refused(kwargs, message):
    with pytest.raises(Exception, match=message):
        SearchConfig(Budgets(size_bytes=1000), **kwargs)

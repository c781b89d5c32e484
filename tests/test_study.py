import numpy as np
import optuna
import pytest
import torch

from cost_models import load_target, make_cost_model
from hwsearch import artifact
from hwsearch.cost_table import build_cost_table
from hwsearch.errors import BudgetInfeasible
from hwsearch.layer_graph import LayerGraph
from hwsearch.options import Option, layer_options
from hwsearch.proxy import build_proxy_table
import itertools

from hwsearch.study import greedy_plan, lower_hull, non_dominated, pareto_front, run_study, top_feasible

SPEC = {"name": "tiny", "kwargs": {}}


@pytest.fixture
def tables(tiny, example):
    layers = LayerGraph.trace(tiny, example).compressible()
    options = {l.name: layer_options(l) for l in layers}
    fixed = artifact.fixed_bytes(tiny, model_spec=SPEC, layer_names=[l.name for l in layers])
    costs = build_cost_table(make_cost_model("analytical", load_target("cortex-a76")), layers, options, fixed)
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


def test_greedy_plan_fits_and_is_near_the_brute_force_optimum(tables):
    proxy, costs, fp32 = tables
    names = list(proxy.options)
    space = {n: non_dominated(proxy.errors[n], costs.column(n, "weight_bytes")) for n in names}
    for budget in (fp32 // 3, fp32 // 6, fp32 // 12):
        plan = greedy_plan(space, proxy, costs, budget)
        assert costs.totals(plan)["size_bytes"] <= budget
        error = sum(proxy.errors[n][i] for n, i in plan.items())
        optimum = min(sum(proxy.errors[n][i] for n, i in zip(names, combo))
                      for combo in itertools.product(*(space[n] for n in names))
                      if costs.totals(dict(zip(names, combo)))["size_bytes"] <= budget)
        assert optimum <= error <= optimum * 1.10 + 1e-9


def test_study_respects_the_budget_and_stores_its_trials(tables, tmp_path):
    proxy, costs, fp32 = tables
    budget = fp32 // 5
    study, cands = run_study(proxy=proxy, costs=costs, budget_bytes=budget, n_trials=40,
                             storage_path=tmp_path / "study.journal", study_name="t", seed=0)
    assert len(cands) == 40 and (tmp_path / "study.journal").stat().st_size > 0
    for cand in cands:
        assert cand.feasible == (cand.totals["size_bytes"] <= budget)
        assert cand.proxy == pytest.approx(sum(proxy.errors[n][i] for n, i in cand.choice.items()))
    best = top_feasible(cands, 3)
    assert 1 <= len(best) <= 3 and all(c.feasible for c in best)
    assert [c.proxy for c in best] == sorted(c.proxy for c in best)
    reloaded = optuna.load_study(study_name="t", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.journal"))))
    assert len(reloaded.trials) == 40


def test_pareto_front_is_monotone(tables, tmp_path):
    proxy, costs, fp32 = tables
    _, cands = run_study(proxy=proxy, costs=costs, budget_bytes=fp32 // 4, n_trials=30,
                         storage_path=tmp_path / "s.journal", study_name="p")
    front = pareto_front(cands)
    sizes = [c.totals["size_bytes"] for c in front]
    assert sizes == sorted(sizes) and [c.proxy for c in front] == sorted((c.proxy for c in front), reverse=True)
    for cand in cands:   # every trial is matched or beaten by a point of the front
        assert any(f.totals["size_bytes"] <= cand.totals["size_bytes"] and f.proxy <= cand.proxy for f in front)


def test_infeasible_budget_says_the_smallest_possible(tables, tmp_path):
    proxy, costs, _ = tables
    with pytest.raises(BudgetInfeasible, match="raise the budget to at least"):
        run_study(proxy=proxy, costs=costs, budget_bytes=100, n_trials=5,
                  storage_path=tmp_path / "s.journal", study_name="x")

"""The study: which option each layer takes, within every budget, for the lowest proxy score.

    found = run_study(proxy=proxy, costs=costs, config=SearchConfig(budgets), storage=storage, study_name="run")
    best = min((c for c in found.candidates if c.feasible), key=lambda c: c.proxy)

`knapsack` solves the separable problem exactly (the optimum the study starts from, and
the reference it is measured against); `space` drops dominated options and keeps sampled
plans within the budgets; `study` runs the Optuna study (`samplers` seeds it per trial so
that any number of processes draw the same trials); `baselines` are the plans a
practitioner would pick without a search; `units` merges channel groups into single
units of the search (--structured).
"""
from hwsearch.study.baselines import baseline_plans, greedy_plan, uniform_plan
from hwsearch.study.knapsack import SEPARABLE, Optimum, exact_optimum, smallest, smallest_for_score
from hwsearch.study.samplers import MAX_SEED, SAMPLERS, make_sampler
from hwsearch.study.space import (OBJECTIVES, Hull, Repair, SearchConfig, check_feasible, lower_hull, non_dominated,
                                   non_dominated_all, search_space)
from hwsearch.study.study import (Candidate, Search, StudyResult, candidates, open_study, pareto_front, run_study,
                                   top_feasible)
from hwsearch.study.units import baseline_index, merge_units, search_units

__all__ = ["MAX_SEED", "OBJECTIVES", "SAMPLERS", "SEPARABLE", "Candidate", "Hull", "Optimum", "Repair", "Search",
           "SearchConfig", "StudyResult", "baseline_index", "baseline_plans", "candidates", "check_feasible",
           "exact_optimum", "greedy_plan", "lower_hull", "make_sampler", "merge_units", "non_dominated",
           "non_dominated_all", "open_study", "pareto_front", "run_study", "search_space", "search_units",
           "smallest", "smallest_for_score", "top_feasible", "uniform_plan"]

"""What summary.json says about a run: the baseline, the exported model, the search, the retrained
candidates, the accuracy floor and the timings, as plain values.

Tools read it (`hwsearch compare`, `nightly.json`, dashboards); report.md and the command
line's summary are written from it.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
import optuna
from optuna.trial import TrialState

from hwsearch import storage as storages
from hwsearch.budget import Budgets
from hwsearch.config import RunConfig
from hwsearch.runs.outcomes import Confirmed, Exported, Searched
from hwsearch.runs.tables import Tables
from hwsearch.study import smallest_for_score


def summarize(config: RunConfig, target, search, run_id: str, tables: Tables, searched: Searched,
              confirmed: Confirmed, exported: Exported, timings: dict[str, float]) -> dict:
    costs, chosen, best = tables.costs, confirmed.chosen, confirmed.best
    workload, budgets = tables.workload, search.budgets
    baseline = costs.totals(tables.baseline_choice)
    return {
        "run_id": run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "target": target.name,
        "model": config.model,
        "metric": workload.data.metric_name,
        "data": workload.data.source,
        "budget": config.budget,
        "budget_bytes": budgets.size_bytes,
        "budgets": budgets.limits(),
        "binding": binding_budget(budgets, chosen.totals),
        "baseline": {"test_accuracy": workload.test_accuracy, "size_bytes": int(baseline["size_bytes"]),
                     "latency_s": baseline["latency_s"], "energy_j": baseline["energy_j"], "macs": int(baseline["macs"])},
        "final": {"test_accuracy": exported.test_accuracy, "val_accuracy": best.val_accuracy,
                  "fine_tuned_kept": best.fine_tuned,
                  "accuracy_before_finetune": best.accuracy_before, "size_bytes": exported.size,
                  "latency_s": chosen.totals["latency_s"], "energy_j": chosen.totals["energy_j"],
                  "macs": int(chosen.totals["macs"]), "proxy": chosen.proxy, "trial": chosen.trial},
        "accuracy_floor": accuracy_floor(config, tables, searched, confirmed, exported),
        "classifier": tables.prepared.replaced,
        "compression_ratio": baseline["size_bytes"] / exported.size,
        "artifact": exported.path.name,
        "onnx": exported.onnx,
        "reload_max_abs_diff": exported.reload_max_abs_diff,
        "search": search_section(config, search, tables, searched),
        "retrained": [{"trial": c.trial, "proxy": c.proxy, "size_bytes": int(c.totals["size_bytes"]),
                       "latency_s": c.totals["latency_s"], "energy_j": c.totals["energy_j"],
                       "end_to_end_divergence": confirmed.divergence[c.trial], "accuracy_before": r.accuracy_before,
                       "val_before": r.val_before, "val_after": r.val_after,
                       "fine_tuned_kept": r.fine_tuned, "val_accuracy": r.val_accuracy,
                       "test_accuracy": r.test_accuracy} for c, r in confirmed.runs],
        "timings_s": timings,
        "config": asdict(config),
    }


def search_section(config: RunConfig, search, tables: Tables, searched: Searched) -> dict:
    """The study's figures: trials, the front, the exact optimum and the gap to it, the baselines."""
    cands, optimum, best = searched.result.candidates, searched.result.optimum, searched.best_proxy
    return {"trials": len(cands), "feasible": sum(c.feasible for c in cands),
            "repaired": sum(c.repaired for c in cands), "pareto": len(searched.front),
            "failed": len(searched.result.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))),
            "workers": workers(searched.result.study),
            "storage": storages.JOURNAL if config.storage is None else storages.masked(config.storage),
            "objectives": list(search.objectives), "sampler": search.sampler or ("nsga2" if searched.second else "tpe"),
            "strategy": search.strategy, "proxy": config.proxy, "best_proxy": best,
            "exact_optimum": {"proxy": optimum.score, "lower_bound": optimum.lower_bound,
                              "method": optimum.method, "size_bytes": int(optimum.totals["size_bytes"]),
                              "latency_s": optimum.totals["latency_s"], "energy_j": optimum.totals["energy_j"]},
            "gap_to_exact_optimum": best / optimum.score - 1 if optimum.score > 0 else 0.0,
            "baselines": {label: {"proxy": c.proxy, "size_bytes": int(c.totals["size_bytes"]),
                                  "latency_s": c.totals["latency_s"], "energy_j": c.totals["energy_j"]}
                          for label, c in tables.baselines.items()}}


def accuracy_floor(config: RunConfig, tables: Tables, searched: Searched, confirmed: Confirmed,
                   exported: Exported) -> dict:
    """Whether the exported model kept enough accuracy; below the floor, a budget likely to meet it."""
    baseline_accuracy = tables.workload.test_accuracy
    drop = baseline_accuracy - exported.test_accuracy
    floor = {"max_drop": config.max_accuracy_drop / 100, "drop": drop,
             "met": drop <= config.max_accuracy_drop / 100 + 1e-12}
    if not floor["met"]:
        floor["suggested_size_bytes"] = suggest_size(confirmed.runs, tables.proxy, tables.costs, searched.result.space,
                                                     baseline_accuracy, baseline_accuracy - config.max_accuracy_drop / 100)
    return floor


def workers(study: optuna.Study) -> dict[str, int]:
    """Completed trials per process that evaluated them (host:pid)."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        worker = trial.user_attrs.get("worker", "this run")       # recorded on database storages only
        counts[worker] = counts.get(worker, 0) + 1
    return counts


def binding_budget(budgets: Budgets, totals: dict[str, float]) -> str | None:
    """The budget the chosen plan is closest to (the one that bound the search), by share left over."""
    slack = {key: 1 - totals[key] / limit for key, limit in budgets.limits().items()}
    return min(slack, key=slack.get) if slack else None


def suggest_size(retrained, proxy, costs, space, baseline_accuracy: float, target_accuracy: float) -> int | None:
    """A file size that would likely meet the accuracy floor.

    Test accuracy falls roughly linearly with the proxy near the baseline (proxy 0): the
    retrained candidate nearest the baseline gives the slope, hence the proxy the floor
    allows; the smallest plan of the exact frontier at or below that proxy is the suggestion.
    """
    cand, result = min(retrained, key=lambda pair: pair[0].proxy)
    lost = baseline_accuracy - result.test_accuracy
    if lost <= 0 or cand.proxy <= 0:
        return None
    allowed = cand.proxy * (baseline_accuracy - target_accuracy) / lost
    return smallest_for_score(proxy.scores, costs, space, allowed)

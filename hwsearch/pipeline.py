"""One run, stage by stage: workload -> layer graph -> options -> proxy and cost tables
-> study -> retraining -> artifact and results. The CLI is a thin shell around `run`.

Results are written to `results/.<run-id>.partial` and renamed to `results/<run-id>`
only when everything succeeded, so a failed run leaves no half-written folder.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from cost_models import Target, load_target, make_cost_model
from hwsearch import artifact, results
from hwsearch.budget import Budgets
from hwsearch.config import RunConfig
from hwsearch.cost_table import build_cost_table
from hwsearch.errors import HwsearchError
from hwsearch.knapsack import smallest_for_score
from hwsearch.layer_graph import Layer, LayerGraph
from hwsearch.options import Option, layer_options
from hwsearch.proxy import ProxyTable, cached_proxy_table
from hwsearch.retrain import retrain
from hwsearch.study import OBJECTIVES, SearchConfig, pareto_front, run_study, top_feasible
from hwsearch.training import TrainConfig
from hwsearch.workload import Workload, default_cache_dir, load_workload


_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def run(config: RunConfig, progress=None, *, prepared: Prepared | None = None,
        target: Target | None = None) -> tuple[dict, Path]:
    """Run the whole pipeline; returns the summary and the results folder.

    `prepared` (from `prepare`, same model, data and calibration) skips the stages that do not
    depend on the hardware; `target` replaces loading `config.target` (a variant built in memory).
    """
    budgets = Budgets.parse(size=config.budget, latency=config.latency, energy=config.energy)   # fail before work
    search = SearchConfig(budgets, objectives=tuple(config.objectives.split(",")), sampler=config.sampler,
                          trials=config.trials, seed=config.seed)
    target = target or load_target(config.target)
    if config.run_id is not None and not _SAFE_NAME.fullmatch(config.run_id):
        raise HwsearchError(f"--run-id {config.run_id!r} is not a plain folder name: use letters, digits, '.', '_' "
                            "and '-' only, not starting with '.'")
    stamp = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    run_id = config.run_id or re.sub(r"[^A-Za-z0-9._-]", "", f"{target.name}-{budgets.label()}-{model_label(config.model)}-{stamp}")
    final_dir = Path(config.results_dir) / run_id
    if final_dir.exists():
        raise HwsearchError(f"results folder {final_dir} already exists; pass another --run-id or remove it")
    work_dir = final_dir.with_name(f".{run_id}.partial")
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    try:
        summary = _run_stages(config, target, search, run_id, work_dir, progress, prepared)
        work_dir.rename(final_dir)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return summary, final_dir


def _run_stages(config, target, search: SearchConfig, run_id, out: Path, progress,
                prepared: Prepared | None = None) -> dict:
    def say(message: str) -> None:
        if progress:
            progress.console.print(message, soft_wrap=True, markup=False, highlight=False)
    timings, clock = {}, time.perf_counter()

    def lap(name):
        nonlocal clock
        timings[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    reused = prepared is not None
    if prepared is None:
        prepared = prepare(config, progress)
    elif prepared.key != prepare_key(config):
        raise RuntimeError(f"bug: tables prepared for {prepared.key} reused for {prepare_key(config)}")
    timings.update({stage: 0.0 if reused else seconds for stage, seconds in prepared.timings_s.items()})
    clock = time.perf_counter()
    workload, graph, layers, options, fixed, proxy = (prepared.workload, prepared.graph, prepared.layers,
                                                      prepared.options, prepared.fixed_bytes, prepared.proxy)
    model, data = workload.model, workload.data
    say(f"model {config.model}: test {data.metric_name} {workload.test_accuracy:.2%} "
        f"({'trained now' if workload.trained_now else 'from cache' if config.data is None else 'as given'})")

    names = [layer.name for layer in layers]
    costs = build_cost_table(make_cost_model("analytical", target), layers, options, fixed, graph)
    budgets = search.budgets
    baseline_choice = {name: options[name].index(Option()) for name in names}
    baseline = costs.totals(baseline_choice)
    limits = ", ".join(budgets.describe(k) for k in budgets.limits())
    say(f"{len(layers)} compressible layers, {sum(map(len, options.values()))} (layer, option) pairs; "
        f"fp32 file {int(baseline['size_bytes']):,} bytes; budgets {limits}")
    lap("tables_cost")
    say(f"proxy table: {'reused (prepared once for several runs)' if reused else prepared.proxy_source}")

    searched = run_study(proxy=proxy, costs=costs, config=search, storage_path=out / "study.journal",
                         study_name=run_id, progress=progress)
    cands, optimum = searched.candidates, searched.optimum
    second = next((OBJECTIVES[o] for o in search.objectives if o != "proxy"), None)
    front = pareto_front([c for c in cands if c.feasible], second or "size_bytes")
    top = top_feasible(cands, config.top_k, spread_over=second)
    best_found = min(c.proxy for c in cands if c.feasible)
    say(f"search: {len(cands)} trials, {sum(c.feasible for c in cands)} within budget "
        f"({sum(c.repaired for c in cands)} repaired), best proxy {best_found:.4f}; exact optimum "
        f"{optimum.score:.4f}")
    lap("search")

    finetune = TrainConfig(epochs=config.finetune_epochs, max_lr=config.finetune_lr, seed=config.seed,
                           max_shift=data.max_shift)
    retrained = []
    for rank, cand in enumerate(top, start=1):
        result = retrain(model, cand.plan(options), data, finetune, progress,
                         description=f"retraining candidate {rank}/{len(top)} (trial {cand.trial})")
        retrained.append((cand, result))
        say(f"candidate trial {cand.trial}: {int(cand.totals['size_bytes']):,} B; validation accuracy "
            f"{result.val_before:.2%} compressed, {result.val_after:.2%} fine-tuned; kept "
            f"{'fine-tuned' if result.fine_tuned else 'compressed'} weights (test {result.test_accuracy:.2%})")
    chosen, best = max(retrained, key=lambda pair: (pair[1].val_accuracy, -pair[0].proxy))
    lap("retrain")

    path = out / "model.hws"
    size = artifact.save(best.model, path, model_spec=workload.model_spec, layer_names=names)
    if size != chosen.totals["size_bytes"] or size > (budgets.size_bytes or size):
        raise RuntimeError(f"bug: exported {size:,} bytes but the search promised {int(chosen.totals['size_bytes']):,}")
    reloaded, _ = artifact.load(path)
    with torch.no_grad():
        probe = data.test.take(256)
        diff = (reloaded(probe) - best.model.eval()(probe)).abs().max().item()
    reloaded_accuracy = data.evaluate(reloaded, data.test)
    lap("export")

    plan = chosen.plan(options)
    original_bytes = {n: int(costs.column(n, "weight_bytes")[baseline_choice[n]]) for n in names}
    chosen_bytes = {n: int(costs.column(n, "weight_bytes")[chosen.choice[n]]) for n in names}
    drop = workload.test_accuracy - reloaded_accuracy
    floor = {"max_drop": config.max_accuracy_drop / 100, "drop": drop,
             "met": drop <= config.max_accuracy_drop / 100 + 1e-12}
    if not floor["met"]:
        floor["suggested_size_bytes"] = suggest_size(retrained, proxy, costs, searched.space, workload.test_accuracy,
                                                     workload.test_accuracy - config.max_accuracy_drop / 100)
    summary = {
        "run_id": run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "target": target.name,
        "model": config.model,
        "metric": data.metric_name,
        "budget": config.budget,
        "budget_bytes": budgets.size_bytes,
        "budgets": budgets.limits(),
        "binding": binding_budget(budgets, chosen.totals),
        "baseline": {"test_accuracy": workload.test_accuracy, "size_bytes": int(baseline["size_bytes"]),
                     "latency_s": baseline["latency_s"], "energy_j": baseline["energy_j"], "macs": int(baseline["macs"])},
        "final": {"test_accuracy": reloaded_accuracy, "val_accuracy": best.val_accuracy,
                  "fine_tuned_kept": best.fine_tuned,
                  "accuracy_before_finetune": best.accuracy_before, "size_bytes": size,
                  "latency_s": chosen.totals["latency_s"], "energy_j": chosen.totals["energy_j"],
                  "macs": int(chosen.totals["macs"]), "proxy": chosen.proxy, "trial": chosen.trial},
        "accuracy_floor": floor,
        "compression_ratio": baseline["size_bytes"] / size,
        "artifact": path.name,
        "reload_max_abs_diff": diff,
        "search": {"trials": len(cands), "feasible": sum(c.feasible for c in cands),
                   "repaired": sum(c.repaired for c in cands), "pareto": len(front), "storage": "study.journal",
                   "objectives": list(search.objectives), "sampler": search.sampler or ("nsga2" if second else "tpe"),
                   "strategy": search.strategy, "best_proxy": best_found,
                   "exact_optimum": {"proxy": optimum.score, "lower_bound": optimum.lower_bound,
                                     "method": optimum.method, "size_bytes": int(optimum.totals["size_bytes"]),
                                     "latency_s": optimum.totals["latency_s"], "energy_j": optimum.totals["energy_j"]},
                   "gap_to_exact_optimum": best_found / optimum.score - 1 if optimum.score > 0 else 0.0},
        "retrained": [{"trial": c.trial, "proxy": c.proxy, "size_bytes": int(c.totals["size_bytes"]),
                       "latency_s": c.totals["latency_s"], "energy_j": c.totals["energy_j"],
                       "accuracy_before": r.accuracy_before, "val_before": r.val_before, "val_after": r.val_after,
                       "fine_tuned_kept": r.fine_tuned, "val_accuracy": r.val_accuracy,
                       "test_accuracy": r.test_accuracy} for c, r in retrained],
        "timings_s": timings,
        "config": asdict(config),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    results.write_candidates(out / "candidates.csv", cands, options)
    results.write_pareto(out / "pareto.csv", front)
    results.write_layers(out / "layers.csv", plan, costs, chosen.choice, baseline_choice)
    results.write_plan(out / "plan.json", plan)
    results.plot_pareto(out / "pareto.png", cands, front, budgets, [(c, r.test_accuracy) for c, r in retrained],
                        chosen, int(baseline["size_bytes"]), optimum, second)
    results.plot_layers(out / "layers.png", plan, original_bytes, chosen_bytes)
    results.write_report(out / "report.md", summary, plan, chosen_bytes, original_bytes)
    return summary


@dataclass
class Prepared:
    """What a run needs that does not depend on the hardware: the trained model and its data, the
    layer graph, the options and the proxy table. Built once by `prepare`; a co-design sweep or a
    nightly matrix passes it to every `run` on the same model instead of rebuilding it."""
    key: tuple                      # the config fields it depends on (prepare_key)
    workload: Workload
    graph: LayerGraph
    layers: list[Layer]
    options: dict[str, list[Option]]
    fixed_bytes: int                # the file's bytes outside the compressible layers
    proxy: ProxyTable
    proxy_source: str               # "computed" or "from cache" (the disk cache)
    timings_s: dict[str, float]     # workload, tables_proxy


def prepare_key(config: RunConfig) -> tuple:
    """The fields of a run config that shape the `Prepared` tables."""
    return (config.model, config.data, config.input, config.eval, config.loss, config.calibration_size,
            config.cache_dir)


def prepare(config: RunConfig, progress=None) -> Prepared:
    """Load (or train) the model, trace it, list the options and build (or read) the proxy table."""
    start = time.perf_counter()
    workload = open_workload(config, progress)
    loaded = time.perf_counter()
    graph = LayerGraph.trace(workload.model, workload.example)
    layers = graph.compressible()
    options = {layer.name: layer_options(layer) for layer in layers}
    fixed = artifact.fixed_bytes(workload.model, model_spec=workload.model_spec, layer_names=[l.name for l in layers])
    calibration = workload.data.train.take(config.calibration_size)
    proxy, from_cache = cached_proxy_table(workload.model, layers, options, calibration,
                                           Path(config.cache_dir or default_cache_dir()), progress)
    timings = {"workload": round(loaded - start, 2), "tables_proxy": round(time.perf_counter() - loaded, 2)}
    return Prepared(prepare_key(config), workload, graph, layers, options, fixed, proxy,
                    "from cache" if from_cache else "computed", timings)


def open_workload(config: RunConfig, progress=None):
    """The built-in model trained on digits (cached), or the user's own model and data, checked."""
    if config.data is None:
        return load_workload(config.model, cache_dir=config.cache_dir, progress=progress)
    from hwsearch.cost_report import parse_input
    from hwsearch.user_workload import load_user_workload
    return load_user_workload(config.model, config.data, input_shape=parse_input(config.input) if config.input else None,
                              eval_spec=config.eval, loss_spec=config.loss)


def model_label(model: str) -> str:
    """A run-folder-friendly name: `resnet18_digits`, or `nets.build` for `path/to/nets.py:build`."""
    where, _, function = model.rpartition(":")
    return f"{Path(where).stem if where.endswith('.py') else where.rpartition('.')[2]}.{function}" if where else model


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
    return smallest_for_score(proxy.errors, costs, space, allowed)

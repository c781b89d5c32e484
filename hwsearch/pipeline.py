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
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch

from cost_models import load_target, make_cost_model
from hwsearch import artifact, results
from hwsearch.budget import parse_size
from hwsearch.config import RunConfig
from hwsearch.cost_table import build_cost_table
from hwsearch.errors import HwsearchError
from hwsearch.layer_graph import LayerGraph
from hwsearch.options import Option, layer_options
from hwsearch.proxy import cached_proxy_table
from hwsearch.retrain import retrain
from hwsearch.study import check_feasible, pareto_front, run_study, top_feasible
from hwsearch.training import TrainConfig, accuracy
from hwsearch.workload import default_cache_dir, load_workload


_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def run(config: RunConfig, progress=None) -> tuple[dict, Path]:
    """Run the whole pipeline; returns the summary and the results folder."""
    budget_bytes = parse_size(config.budget)           # bad input fails before any work
    target = load_target(config.target)
    if config.run_id is not None and not _SAFE_NAME.fullmatch(config.run_id):
        raise HwsearchError(f"--run-id {config.run_id!r} is not a plain folder name: use letters, digits, '.', '_' "
                            "and '-' only, not starting with '.'")
    stamp = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    run_id = config.run_id or re.sub(r"[^A-Za-z0-9._-]", "", f"{target.name}-{config.budget}-{config.model}-{stamp}")
    final_dir = Path(config.results_dir) / run_id
    if final_dir.exists():
        raise HwsearchError(f"results folder {final_dir} already exists; pass another --run-id or remove it")
    work_dir = final_dir.with_name(f".{run_id}.partial")
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    try:
        summary = _run_stages(config, target, budget_bytes, run_id, work_dir, progress)
        work_dir.rename(final_dir)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return summary, final_dir


def _run_stages(config, target, budget_bytes, run_id, out: Path, progress) -> dict:
    def say(message: str) -> None:
        if progress:
            progress.console.print(message, soft_wrap=True, markup=False, highlight=False)
    timings, clock = {}, time.perf_counter()

    def lap(name):
        nonlocal clock
        timings[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    workload = load_workload(config.model, cache_dir=config.cache_dir, progress=progress)
    model, data = workload.model, workload.data
    say(f"model {config.model}: test accuracy {workload.test_accuracy:.2%} "
        f"({'trained now' if workload.trained_now else 'from cache'})")
    lap("workload")

    graph = LayerGraph.trace(model, data.train.x[:1])
    layers = graph.compressible()
    names = [layer.name for layer in layers]
    options = {layer.name: layer_options(layer) for layer in layers}
    fixed = artifact.fixed_bytes(model, model_spec=workload.model_spec, layer_names=names)
    costs = build_cost_table(make_cost_model("analytical", target), layers, options, fixed, graph)
    check_feasible(costs, budget_bytes)
    baseline_choice = {name: options[name].index(Option()) for name in names}
    baseline = costs.totals(baseline_choice)
    say(f"{len(layers)} compressible layers, {sum(map(len, options.values()))} (layer, option) pairs; "
        f"fp32 file {int(baseline['size_bytes']):,} bytes, budget {budget_bytes:,}")
    lap("tables_cost")

    calibration = data.train.x[:config.calibration_size]
    proxy, reused = cached_proxy_table(model, layers, options, calibration,
                                       Path(config.cache_dir or default_cache_dir()), progress)
    say(f"proxy table: {'from cache' if reused else 'computed'}")
    lap("tables_proxy")

    study, cands = run_study(proxy=proxy, costs=costs, budget_bytes=budget_bytes, n_trials=config.trials,
                             storage_path=out / "study.journal", study_name=run_id, seed=config.seed,
                             progress=progress)
    front = pareto_front(cands)
    top = top_feasible(cands, config.top_k)
    say(f"search: {len(cands)} trials, {sum(c.feasible for c in cands)} within budget, best proxy {top[0].proxy:.4f}")
    lap("search")

    finetune = TrainConfig(epochs=config.finetune_epochs, max_lr=config.finetune_lr, seed=config.seed)
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
    if size != chosen.totals["size_bytes"] or size > budget_bytes:
        raise RuntimeError(f"bug: exported {size:,} bytes but the search promised {int(chosen.totals['size_bytes']):,}")
    reloaded, _ = artifact.load(path)
    with torch.no_grad():
        diff = (reloaded(data.test.x) - best.model.eval()(data.test.x)).abs().max().item()
    reloaded_accuracy = accuracy(reloaded, data.test)
    lap("export")

    plan = chosen.plan(options)
    original_bytes = {n: int(costs.column(n, "weight_bytes")[baseline_choice[n]]) for n in names}
    chosen_bytes = {n: int(costs.column(n, "weight_bytes")[chosen.choice[n]]) for n in names}
    summary = {
        "run_id": run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "target": target.name,
        "model": config.model,
        "budget": config.budget,
        "budget_bytes": budget_bytes,
        "baseline": {"test_accuracy": workload.test_accuracy, "size_bytes": int(baseline["size_bytes"]),
                     "latency_s": baseline["latency_s"], "energy_j": baseline["energy_j"], "macs": int(baseline["macs"])},
        "final": {"test_accuracy": reloaded_accuracy, "val_accuracy": best.val_accuracy,
                  "fine_tuned_kept": best.fine_tuned,
                  "accuracy_before_finetune": best.accuracy_before, "size_bytes": size,
                  "latency_s": chosen.totals["latency_s"], "energy_j": chosen.totals["energy_j"],
                  "macs": int(chosen.totals["macs"]), "proxy": chosen.proxy, "trial": chosen.trial},
        "compression_ratio": baseline["size_bytes"] / size,
        "artifact": path.name,
        "reload_max_abs_diff": diff,
        "search": {"trials": len(cands), "feasible": sum(c.feasible for c in cands), "pareto": len(front),
                   "storage": "study.journal"},
        "retrained": [{"trial": c.trial, "proxy": c.proxy, "size_bytes": int(c.totals["size_bytes"]),
                       "accuracy_before": r.accuracy_before, "val_before": r.val_before, "val_after": r.val_after,
                       "fine_tuned_kept": r.fine_tuned, "val_accuracy": r.val_accuracy,
                       "test_accuracy": r.test_accuracy} for c, r in retrained],
        "timings_s": timings,
        "config": asdict(config),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    results.write_candidates(out / "candidates.csv", cands, options)
    results.write_plan(out / "plan.json", plan)
    results.plot_pareto(out / "pareto.png", cands, front, budget_bytes,
                        [(c, r.test_accuracy) for c, r in retrained], chosen, int(baseline["size_bytes"]))
    results.plot_layers(out / "layers.png", plan, original_bytes, chosen_bytes)
    results.write_report(out / "report.md", summary, plan, chosen_bytes, original_bytes)
    return summary

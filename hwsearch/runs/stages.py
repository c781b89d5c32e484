"""One run in its folder, stage by stage: tables -> search -> retraining -> export -> summary and results.

`run_stages` reads as the pipeline; each stage below is one function that takes what the
stages before it made and returns what it made, and says one line about it.
"""
from __future__ import annotations

from pathlib import Path

import optuna
import torch

from hwsearch.cluster import Pool, open_pool
from hwsearch.config import RunConfig
from hwsearch.export import artifact
from hwsearch.proxy import PlanScorer, shared_entry
from hwsearch.runs import results
from hwsearch.runs.folder import RunFolder
from hwsearch.runs.outcomes import Confirmed, Exported, Searched
from hwsearch.runs.prepared import Prepared, prepare_or_reuse
from hwsearch.runs.progress import Laps, say_to
from hwsearch.runs.retraining import retrain
from hwsearch.runs.summary import summarize
from hwsearch.runs.tables import Tables, hardware_tables
from hwsearch.study import OBJECTIVES, Candidate, SearchConfig, pareto_front, run_study, top_feasible
from hwsearch.workloads import TrainConfig, Workload


def run_stages(config: RunConfig, target, search: SearchConfig, folder: RunFolder, storage, previous, progress,
               prepared: Prepared | None = None, workload: Workload | None = None) -> dict:
    """Every stage of a run into `folder`; returns the summary (summary.json)."""
    say = say_to(progress)
    reused = prepared is not None
    with open_pool(config.workers, config.cluster) as pool:     # None: every stage in this process
        if pool is not None:
            say(f"heavy stages on {pool.describe()}")
        prepared = prepare_or_reuse(config, progress, say, prepared, workload, pool=pool)
        lap = Laps()
        # the stages prepare ran here (0 s when the tables were prepared beforehand, for several runs)
        lap.timings.update({name: 0.0 if reused else seconds for name, seconds in prepared.timings_s.items()})
        tables = hardware_tables(prepared, target, search, config, progress, say)
        lap("tables_cost")
        searched = search_stage(tables, search, config.top_k, folder, storage, previous, progress, say)
        lap("search")
        confirmed = retrain_stage(tables, config, searched.top, progress, say, pool)
        record_retrained(storage, folder.run_id, confirmed)
        lap("retrain")
    exported = export_stage(tables, confirmed, search, folder.path, say)
    lap("export")
    summary = summarize(config, target, search, folder.run_id, tables, searched, confirmed, exported, lap.timings)
    results.write_run(folder.path, summary, search.budgets, tables, searched, confirmed)
    return summary


def search_stage(tables: Tables, search: SearchConfig, top_k: int, folder: RunFolder, storage, previous, progress,
                 say) -> Searched:
    """The study over the tables: every trial, its front and the candidates worth retraining."""
    baseline = tables.costs.totals(tables.baseline_choice)
    limits = ", ".join(search.budgets.describe(k) for k in search.budgets.limits())
    say(f"{len(tables.layers)} compressible layers, {sum(map(len, tables.options.values()))} (layer, option) pairs; "
        f"fp32 file {int(baseline['size_bytes']):,} bytes; budgets {limits}")
    record = {k: v for k, v in folder.record.items() if k in ("version", "run_id", "config", "target_yaml")}
    if tables.prepared.proxy_file is not None and tables.prepared.proxy_file.is_file():
        record["proxy_table"] = shared_entry(tables.prepared.proxy_file)     # workers fetch it, not recompute it
    result = run_study(proxy=tables.proxy, costs=tables.costs, config=search, storage=storage,
                       study_name=folder.run_id, record=record, resumed_workers=previous, progress=progress)
    cands, optimum = result.candidates, result.optimum
    second = next((OBJECTIVES[o] for o in search.objectives if o != "proxy"), None)
    front = pareto_front([c for c in cands if c.feasible], second or "size_bytes")
    top = top_feasible(cands, top_k, spread_over=second)
    best = min(c.proxy for c in cands if c.feasible)
    beaten = " (the study's whole-plan costs found better)" if best < optimum.lower_bound * (1 - 1e-9) else ""
    bound = "exact optimum" if optimum.lower_bound >= optimum.score * (1 - 1e-9) else (
        f"lower bound {optimum.lower_bound:.4g}, best plan of the separable relaxation")
    spread = f"; {len(front)} plans on the front against {second.split('_')[0]} (pareto.csv)" if second else ""
    say(f"search: {len(cands)} trials, {sum(c.feasible for c in cands)} within budget "
        f"({sum(c.repaired for c in cands)} repaired), best proxy {best:.4g}; {bound} "
        f"{optimum.score:.4g}{beaten}{spread}")
    return Searched(result, front, top, best, second)


def retrain_stage(tables: Tables, config: RunConfig, top: list[Candidate], progress, say,
                  pool: Pool | None = None) -> Confirmed:
    """Fine-tune each candidate (structure fixed); the one best on validation is chosen. With a `pool`
    the candidates are fine-tuned at once, one task each, on the cluster's workers."""
    model, data, options = tables.workload.model, tables.workload.data, tables.options
    finetune = TrainConfig(epochs=config.finetune_epochs, max_lr=config.finetune_lr, seed=config.seed,
                           max_shift=data.max_shift, schedule=config.finetune_schedule, distill=config.finetune_distill,
                           max_steps=config.finetune_steps)
    runs, divergence, scorer = [], {}, PlanScorer(model, tables.calibration)
    metric = "accuracy" if data.metric_name == "top-1 accuracy" else data.metric_name
    if pool is None:
        results = (retrain(model, cand.plan(options), data, finetune, progress,
                           description=f"retraining candidate {rank}/{len(top)} (trial {cand.trial})",
                           calibration=tables.calibration) for rank, cand in enumerate(top, start=1))
    else:
        task = progress.add_task(f"fine-tuning {len(top)} candidate(s) on the cluster", total=len(top)) \
            if progress else None
        futures = [pool.submit(retrain, model, cand.plan(options), data, finetune, None, "",
                               calibration=tables.calibration) for cand in top]
        results = (_advanced(future.result(), progress, task) for future in futures)
    for cand, result in zip(top, results):
        runs.append((cand, result))
        divergence[cand.trial] = scorer(cand.plan(options))
        say(f"candidate trial {cand.trial}: {int(cand.totals['size_bytes']):,} B; validation {metric} "
            f"{result.val_before:.2%} compressed, {result.val_after:.2%} fine-tuned; kept "
            f"{'fine-tuned' if result.fine_tuned else 'compressed'} weights (test {result.test_accuracy:.2%})")
    if pool is not None and progress:
        progress.remove_task(task)
    chosen, best = max(runs, key=lambda pair: (pair[1].val_accuracy, -pair[0].proxy))
    return Confirmed(runs, divergence, chosen, best)


def record_retrained(storage, study_name: str, confirmed: Confirmed) -> None:
    """The fine-tuned candidates' scores in the study (user attribute "retrained"), beside its trials: the run's
    storage holds what retraining found (on a cluster or here), not only the run folder."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    study.set_user_attr("retrained", [
        {"trial": cand.trial, "val_before": result.val_before, "val_after": result.val_after,
         "fine_tuned_kept": result.fine_tuned, "test_accuracy": result.test_accuracy}
        for cand, result in confirmed.runs])


def _advanced(value, progress, task):
    if progress is not None:
        progress.advance(task)
    return value


def export_stage(tables: Tables, confirmed: Confirmed, search: SearchConfig, out: Path, say) -> Exported:
    """model.hws at the size the search promised (checked), read back and measured; model.onnx beside it."""
    workload, chosen, best = tables.workload, confirmed.chosen, confirmed.best
    path = out / "model.hws"
    size = artifact.save(best.model, path, model_spec=workload.model_spec, layer_names=tables.names)
    if size != chosen.totals["size_bytes"] or size > (search.budgets.size_bytes or size):
        raise RuntimeError(f"bug: exported {size:,} bytes but the search promised {int(chosen.totals['size_bytes']):,}")
    # into the architecture the workload built (no code the file names runs: a user's builder is called here
    # because the user named it)
    reloaded, _ = artifact.load(path, model=workload.architecture() if workload.architecture else None)
    with torch.no_grad():
        probe = workload.data.test.take(256)
        diff = (reloaded(probe) - best.model.eval()(probe)).abs().max().item()
    accuracy = workload.data.evaluate(reloaded, workload.data.test)
    onnx = write_onnx(best.model, workload.example, workload.data, out / "model.onnx")
    say(f"model.onnx: {onnx['bytes']:,} bytes, onnxruntime agrees on {onnx['agreement']:.2%} of the "
        "test predictions" if "error" not in onnx else f"model.onnx not written: {onnx['error']}")
    return Exported(path, size, diff, accuracy, onnx)


def write_onnx(model, example, data, path: Path) -> dict:
    """model.onnx beside model.hws (integer weights with DequantizeLinear or codebook lookups) and the share of
    test predictions onnxruntime makes as torch does. An export failure is reported, not raised: the
    compressed file is the run's product and is already written."""
    from hwsearch.export import export_onnx, predictions_agree
    try:
        export_onnx(model.eval(), example, path, integer_weights=True)
    except Exception as exc:          # an op the exporter or onnxruntime does not take: say which
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    return {"file": path.name, "bytes": path.stat().st_size, "agreement": predictions_agree(path, model, data.test)}

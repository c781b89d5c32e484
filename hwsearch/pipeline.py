"""One run, stage by stage: workload -> layer graph -> options -> proxy and cost tables
-> study -> retraining -> artifact and results. The CLI is a thin shell around `run`
and `resume` (and `worker.work`, which joins another run's study).

Results are written to `results/.<run-id>.partial` (see run_folder) and renamed to
`results/<run-id>` only when everything succeeded. A run that fails before any trial
finished leaves no folder; one that stops later (Ctrl-C, SIGKILL, an error) keeps its
folder and its finished trials, and `resume` continues it: the tables come back from the
caches, the trials it left running are evaluated again under their own numbers, the rest
of the queue runs, then retraining and export, so it ends where an uninterrupted run ends.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from cost_models import Target, make_cost_model
from cost_models.target import parse_target, read_target
from hwsearch import artifact, results, storage as storages
from hwsearch.atomic_write import write_text
from hwsearch.baselines import baseline_plans
from hwsearch.budget import Budgets
from hwsearch.config import RunConfig
from hwsearch.cost_table import CostTable, build_cost_table
from hwsearch.errors import RunError
from hwsearch.knapsack import smallest_for_score
from hwsearch.compress.classifier import replace_classifier, with_transform
from hwsearch.layer_graph import Layer, LayerGraph
from hwsearch.grid import layer_options
from hwsearch.options import Option
from hwsearch.proxy import PlanScorer, ProxyTable, cached_proxy_table
from hwsearch.retrain import retrain
from hwsearch.run_folder import MAX_ID, RECORD, RunFolder, RunKept, check_run_id, interrupted_runs
from hwsearch.study import OBJECTIVES, Candidate, SearchConfig, pareto_front, run_study, search_space, top_feasible
from hwsearch.training import TrainConfig, train
from hwsearch.units import baseline_index, merge_units, search_units
from hwsearch.workload import Workload, load_workload, usable_cache_dir

RECORD_VERSION = 1


def run(config: RunConfig, progress=None, *, prepared: Prepared | None = None,
        target: Target | None = None, target_text: str | None = None) -> tuple[dict, Path]:
    """Run the whole pipeline in a new run folder; returns the summary and the results folder.

    `prepared` (from `prepare`, same model, data and calibration) skips the stages that do not
    depend on the hardware; `target` (with its YAML text) replaces reading `config.target`: a
    variant built in memory by a co-design sweep.
    """
    search = search_config(config)                 # bad input fails here, before any work
    if target is None:
        target, target_text = read_target(config.target)
    elif target_text is None:
        raise ValueError("a target given in memory needs its YAML text (the run records it for --resume)")
    usable_cache_dir(config.cache_dir)
    storages.kind(config.storage)
    if config.run_id is not None:
        check_run_id(config.run_id)
    run_id = config.run_id or default_run_id(target.name, search.budgets, config.model)
    folder = RunFolder.create(Path(config.results_dir), run_id, exact=config.run_id is not None)
    try:
        storage = storages.open_storage(config.storage, run_folder=folder.path, heartbeat_s=config.heartbeat_s)
        if config.storage is not None and study_exists(storage, folder.run_id):
            raise RunError(f"a study named {folder.run_id} is already in --storage {storages.masked(config.storage)}: "
                           "pass another --run-id (or continue that run with hwsearch --resume)")
        folder.write_record({"version": RECORD_VERSION, "run_id": folder.run_id,
                             "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             # absolute paths: --resume and workers may start in another folder
                             "config": asdict(with_absolute_paths(config)), "target_yaml": target_text,
                             "workers": []})
        folder.add_worker()
    except BaseException:
        folder.discard()
        raise
    stopped = [p.name for p in interrupted_runs(Path(config.results_dir))]
    if stopped:
        say_to(progress)(f"note: {len(stopped)} interrupted run(s) in {config.results_dir}/ ({', '.join(stopped[:3])}"
                       f"{', ...' if len(stopped) > 3 else ''}): hwsearch --resume <run-id> continues one")
    return _in_folder(folder, config, target, search, storage, None, progress, prepared)


def resume(run_or_folder: str, *, results_dir: str = "results", cache_dir: str | None = None,
           progress=None) -> tuple[dict, Path]:
    """Continue an interrupted run (its id, or its `.<id>.partial` folder) with the settings it started with."""
    folder = RunFolder.resume(Path(results_dir), run_or_folder)
    try:
        record = folder.record
        config = config_from_record(record)
        if cache_dir is not None:
            config = replace(config, cache_dir=cache_dir)
        target = parse_target(record["target_yaml"], source=f"(the target recorded in {folder.path / RECORD})")
        search = search_config(config)
        usable_cache_dir(config.cache_dir)
        previous = set(record.get("workers", []))
        folder.add_worker()
        if config.storage is None:
            storages.repair_journal(folder.path / storages.JOURNAL)
        storage = storages.open_storage(config.storage, run_folder=folder.path, heartbeat_s=config.heartbeat_s)
    except BaseException:
        folder.release()
        raise
    return _in_folder(folder, config, target, search, storage, previous, progress)


def with_absolute_paths(config: RunConfig) -> RunConfig:
    """The config with the user's .py files, the cache folder and a file storage as absolute paths."""
    def absolute(spec: str | None) -> str | None:
        where, sep, function = (spec or "").rpartition(":")
        return f"{Path(where).resolve()}:{function}" if sep and where.endswith(".py") else spec

    storage = config.storage
    if storage is not None and storages.kind(storage) == "journal":
        storage = str(Path(storage).resolve())
    elif storage is not None and storage.startswith("sqlite:///") and not storage.startswith("sqlite:////"):
        storage = f"sqlite:///{Path(storage.removeprefix('sqlite:///')).resolve()}"
    return replace(config, model=absolute(config.model), data=absolute(config.data), eval=absolute(config.eval),
                   loss=absolute(config.loss), storage=storage,
                   cache_dir=str(Path(config.cache_dir).resolve()) if config.cache_dir else None)


def config_from_record(record: dict) -> RunConfig:
    """The RunConfig a run recorded (settings added to RunConfig since then keep their defaults)."""
    known = {f.name for f in fields(RunConfig)}
    return RunConfig(**{k: v for k, v in record["config"].items() if k in known})


def search_config(config: RunConfig) -> SearchConfig:
    budgets = Budgets.parse(size=config.budget, latency=config.latency, energy=config.energy)
    return SearchConfig(budgets, objectives=tuple(config.objectives.split(",")), sampler=config.sampler,
                        trials=config.trials, seed=config.seed)


def default_run_id(target: str, budgets: Budgets, model: str) -> str:
    """<target>-<budgets>-<model>-<UTC time>, cut to a folder name of at most MAX_ID characters."""
    stamp = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    head = re.sub(r"[^A-Za-z0-9._-]", "", f"{target}-{budgets.label()}-{model_label(model)}").lstrip(".")
    return f"{head[:MAX_ID - len(stamp) - 6]}-{stamp}"      # room for a -2, -3 suffix


def _in_folder(folder: RunFolder, config: RunConfig, target, search: SearchConfig, storage,
               previous: set[str] | None, progress, prepared: Prepared | None = None) -> tuple[dict, Path]:
    try:
        summary = _run_stages(config, target, search, folder, storage, previous, progress, prepared)
        final = folder.finish()
    except BaseException as exc:
        finished = _finished_trials(storage, folder.run_id)
        if finished or previous is not None:          # trials worth keeping, or a folder that was there before
            folder.release()
            raise RunKept(folder.path, finished) from exc
        if config.storage is not None:
            _forget_study(storage, folder.run_id)
        folder.discard()
        raise
    return summary, final


def study_exists(storage, name: str) -> bool:
    return any(s.study_name == name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))


def _finished_trials(storage, name: str) -> int:
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    except Exception:            # no study yet, or the storage is what failed
        return 0


def _forget_study(storage, name: str) -> None:
    try:
        optuna.delete_study(study_name=name, storage=storage)
    except Exception:            # never created, or the database is gone: nothing to clean
        pass


def say_to(progress):
    def say(message: str) -> None:
        if progress:
            progress.console.print(message, soft_wrap=True, markup=False, highlight=False)
    return say


@dataclass
class Prepared:
    """What a run needs that does not depend on the hardware: the trained model (its classifier
    replaced when asked) and its data, the layer graph, the options and the proxy table. Built
    once by `prepare`; a co-design sweep or a nightly matrix passes it to every `run` on the
    same model instead of rebuilding it."""
    key: tuple                        # the config fields it depends on (prepare_key)
    workload: Workload
    graph: LayerGraph
    layers: list[Layer]
    options: dict[str, list[Option]]
    fixed_bytes: int                  # the file's bytes outside the compressible layers
    proxy: ProxyTable                 # scored as config.proxy says
    calibration: torch.Tensor
    proxy_source: str                 # "computed" or "from cache" (the disk cache)
    replaced: dict | None             # the classifier replacement's report, if any
    timings_s: dict[str, float]       # workload, classifier, tables_proxy

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]


def prepare_key(config: RunConfig) -> tuple:
    """The fields of a run config that shape the `Prepared` tables."""
    return (config.model, config.data, config.input, config.eval, config.loss, config.calibration_size,
            config.cache_dir, config.grid, config.proxy, config.classifier, config.classifier_epochs,
            config.finetune_lr, config.seed)


def prepare(config: RunConfig, progress=None, say=None) -> Prepared:
    """Load (or train) the model, replace its classifier if asked, trace it, list the options and
    build (or read) the proxy table, which also measures every option's exact bytes."""
    say = say or say_to(progress)
    timings, clock = {}, time.perf_counter()

    def lap(name):
        nonlocal clock
        timings[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    workload = open_workload(config, progress, warn=say)
    data = workload.data
    say(f"model {config.model}: test {data.metric_name} {workload.test_accuracy:.2%} "
        f"({'trained now' if workload.trained_now else 'from cache' if config.data is None else 'as given'})")
    lap("workload")
    replaced = None
    if config.classifier:             # a whole-model option, chosen before the per-layer search
        replaced = replace_classifier_(workload, config, progress)
        say(f"classifier replaced by global average pooling and one linear layer: {replaced['params_before']:,} -> "
            f"{replaced['params_after']:,} parameters, test {data.metric_name} {replaced['test_accuracy']:.2%} "
            f"after {config.classifier_epochs} epochs")
        lap("classifier")
    model = workload.model
    graph = LayerGraph.trace(model, workload.example)
    layers = graph.compressible()
    options = {layer.name: layer_options(layer, config.grid) for layer in layers}
    fixed = artifact.fixed_bytes(model, model_spec=workload.model_spec, layer_names=[l.name for l in layers])
    calibration = data.train.take(config.calibration_size)
    table, reused = cached_proxy_table(model, layers, options, calibration, usable_cache_dir(config.cache_dir),
                                       progress, warn=say)
    say(f"proxy table: {'from cache' if reused else 'computed'}")
    lap("tables_proxy")
    return Prepared(prepare_key(config), workload, graph, layers, options, fixed, table.combined(config.proxy),
                    calibration, "from cache" if reused else "computed", replaced, timings)


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


def build_tables(config: RunConfig, target, progress, say, prepared: Prepared | None = None) -> Tables:
    """The workload (cached model, or the user's), its layer graph, options, proxy and cost tables."""
    prepared = prepare_or_reuse(config, progress, say, prepared)
    return hardware_tables(prepared, target, search_config(config), config, progress, say)


def prepare_or_reuse(config: RunConfig, progress, say, prepared: Prepared | None) -> Prepared:
    """`prepared` if given (checked to be for this config), else `prepare(config)`."""
    if prepared is None:
        return prepare(config, progress, say)
    if prepared.key != prepare_key(config):
        raise RuntimeError(f"bug: tables prepared for {prepared.key} reused for {prepare_key(config)}")
    say(f"model and proxy table reused (prepared once for several runs; proxy table {prepared.proxy_source})")
    return prepared


def _run_stages(config, target, search: SearchConfig, folder: RunFolder, storage, previous, progress,
                prepared: Prepared | None = None) -> dict:
    say = say_to(progress)
    out, run_id = folder.path, folder.run_id
    timings, clock = {}, time.perf_counter()

    def lap(name):
        nonlocal clock
        timings[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    reused = prepared is not None
    prepared = prepare_or_reuse(config, progress, say, prepared)
    # the stages prepare ran here (0 s when the tables were prepared beforehand, for several runs)
    timings.update({name: 0.0 if reused else seconds for name, seconds in prepared.timings_s.items()})
    clock = time.perf_counter()
    tables = hardware_tables(prepared, target, search, config, progress, say)
    lap("tables_cost")
    workload, layers, names, options = tables.workload, tables.layers, tables.names, tables.options
    costs, proxy, calibration, baseline_choice = tables.costs, tables.proxy, tables.calibration, tables.baseline_choice
    baselines = tables.baselines
    model, data = workload.model, workload.data
    budgets = search.budgets
    baseline = costs.totals(baseline_choice)
    limits = ", ".join(budgets.describe(k) for k in budgets.limits())
    say(f"{len(layers)} compressible layers, {sum(map(len, options.values()))} (layer, option) pairs; "
        f"fp32 file {int(baseline['size_bytes']):,} bytes; budgets {limits}")

    record = {k: v for k, v in folder.record.items() if k in ("version", "run_id", "config", "target_yaml")}
    searched = run_study(proxy=proxy, costs=costs, config=search, storage=storage, study_name=run_id, record=record,
                         resumed_workers=previous, progress=progress)
    cands, optimum = searched.candidates, searched.optimum
    second = next((OBJECTIVES[o] for o in search.objectives if o != "proxy"), None)
    front = pareto_front([c for c in cands if c.feasible], second or "size_bytes")
    top = top_feasible(cands, config.top_k, spread_over=second)
    best_found = min(c.proxy for c in cands if c.feasible)
    beaten = " (the study's whole-plan costs found better)" if best_found < optimum.lower_bound * (1 - 1e-9) else ""
    bound = "exact optimum" if optimum.lower_bound >= optimum.score * (1 - 1e-9) else (
        f"lower bound {optimum.lower_bound:.4g}, best plan of the separable relaxation")
    spread = f"; {len(front)} plans on the front against {second.split('_')[0]} (pareto.csv)" if second else ""
    say(f"search: {len(cands)} trials, {sum(c.feasible for c in cands)} within budget "
        f"({sum(c.repaired for c in cands)} repaired), best proxy {best_found:.4g}; {bound} "
        f"{optimum.score:.4g}{beaten}{spread}")
    lap("search")

    finetune = TrainConfig(epochs=config.finetune_epochs, max_lr=config.finetune_lr, seed=config.seed,
                           max_shift=data.max_shift, schedule=config.finetune_schedule, distill=config.finetune_distill)
    retrained, measured, divergence = [], {}, PlanScorer(model, calibration)   # measured: end-to-end, per trial
    metric = "accuracy" if data.metric_name == "top-1 accuracy" else data.metric_name
    for rank, cand in enumerate(top, start=1):
        result = retrain(model, cand.plan(options), data, finetune, progress,
                         description=f"retraining candidate {rank}/{len(top)} (trial {cand.trial})",
                         calibration=calibration)
        retrained.append((cand, result))
        measured[cand.trial] = divergence(cand.plan(options))
        say(f"candidate trial {cand.trial}: {int(cand.totals['size_bytes']):,} B; validation {metric} "
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
    onnx_report = write_onnx(best.model, workload.example, data, out / "model.onnx")
    say(f"model.onnx: {onnx_report['bytes']:,} bytes, onnxruntime agrees on {onnx_report['agreement']:.2%} of the "
        "test predictions" if "error" not in onnx_report else f"model.onnx not written: {onnx_report['error']}")
    lap("export")

    plan = chosen.plan(options)
    original_bytes = {n: int(costs.column(n, "weight_bytes")[baseline_choice[n]]) for n in options}
    chosen_bytes = {n: int(costs.column(n, "weight_bytes")[chosen.choice[n]]) for n in options}
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
        "classifier": tables.prepared.replaced,
        "compression_ratio": baseline["size_bytes"] / size,
        "artifact": path.name,
        "onnx": onnx_report,
        "reload_max_abs_diff": diff,
        "search": {"trials": len(cands), "feasible": sum(c.feasible for c in cands),
                   "repaired": sum(c.repaired for c in cands), "pareto": len(front),
                   "failed": len(searched.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))),
                   "workers": _workers(searched.study),
                   "storage": storages.JOURNAL if config.storage is None else storages.masked(config.storage),
                   "objectives": list(search.objectives), "sampler": search.sampler or ("nsga2" if second else "tpe"),
                   "strategy": search.strategy, "proxy": config.proxy, "best_proxy": best_found,
                   "exact_optimum": {"proxy": optimum.score, "lower_bound": optimum.lower_bound,
                                     "method": optimum.method, "size_bytes": int(optimum.totals["size_bytes"]),
                                     "latency_s": optimum.totals["latency_s"], "energy_j": optimum.totals["energy_j"]},
                   "gap_to_exact_optimum": best_found / optimum.score - 1 if optimum.score > 0 else 0.0,
                   "baselines": {label: {"proxy": c.proxy, "size_bytes": int(c.totals["size_bytes"]),
                                         "latency_s": c.totals["latency_s"], "energy_j": c.totals["energy_j"]}
                                 for label, c in baselines.items()}},
        "retrained": [{"trial": c.trial, "proxy": c.proxy, "size_bytes": int(c.totals["size_bytes"]),
                       "latency_s": c.totals["latency_s"], "energy_j": c.totals["energy_j"],
                       "end_to_end_divergence": measured[c.trial], "accuracy_before": r.accuracy_before, "val_before": r.val_before, "val_after": r.val_after,
                       "fine_tuned_kept": r.fine_tuned, "val_accuracy": r.val_accuracy,
                       "test_accuracy": r.test_accuracy} for c, r in retrained],
        "timings_s": timings,
        "config": asdict(config),
    }
    write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    results.write_candidates(out / "candidates.csv", cands, options)
    results.write_pareto(out / "pareto.csv", front)
    results.write_layers(out / "layers.csv", plan, costs, chosen.choice, baseline_choice)
    results.write_plan(out / "plan.json", plan)
    results.plot_pareto(out / "pareto.png", cands, front, budgets, [(c, r.test_accuracy) for c, r in retrained],
                        chosen, int(baseline["size_bytes"]), optimum, second, baselines, config.proxy)
    results.plot_layers(out / "layers.png", plan, original_bytes, chosen_bytes)
    results.write_report(out / "report.md", summary, plan, chosen_bytes, original_bytes)
    return summary


def replace_classifier_(workload, config: RunConfig, progress=None) -> dict:
    """Replace the workload's fully connected classifier by GAP and one linear layer (Hsiao 2017) and
    retrain; in place. The baseline accuracy stays the original model's: the floor is measured from it."""
    model, data = workload.model, workload.data
    calibration = data.train.take(config.calibration_size)
    replaced = replace_classifier(model, workload.example, calibration=calibration)
    # a fifth of the fine-tuning rate: the least-squares start has large weights (LeNet-5 diverged at 0.01)
    train(replaced, data, TrainConfig(epochs=config.classifier_epochs, max_lr=config.finetune_lr / 5,
                                      seed=config.seed, max_shift=data.max_shift), progress,
          "retraining the replaced classifier")
    report = {"method": config.classifier, "params_before": sum(p.numel() for p in model.parameters()),
              "params_after": sum(p.numel() for p in replaced.parameters()),
              "test_accuracy": data.evaluate(replaced, data.test), "epochs": config.classifier_epochs}
    workload.model, workload.model_spec = replaced.eval(), with_transform(workload.model_spec, workload.example)
    return report


def write_onnx(model, example, data, path: Path) -> dict:
    """model.onnx beside model.hws (integer weights with DequantizeLinear or codebook lookups) and the share of
    test predictions onnxruntime makes as torch does. An export failure is reported, not raised: the
    compressed file is the run's product and is already written."""
    from hwsearch.onnx_export import export_onnx, predictions_agree
    try:
        export_onnx(model.eval(), example, path, integer_weights=True)
    except Exception as exc:          # an op the exporter or onnxruntime does not take: say which
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    return {"file": path.name, "bytes": path.stat().st_size, "agreement": predictions_agree(path, model, data.test)}


def _workers(study: optuna.Study) -> dict[str, int]:
    """Completed trials per process that evaluated them (host:pid)."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        worker = trial.user_attrs.get("worker", "this run")       # recorded on database storages only
        counts[worker] = counts.get(worker, 0) + 1
    return counts


def open_workload(config: RunConfig, progress=None, warn=None):
    """The built-in model trained on digits (cached), or the user's own model and data, checked."""
    if config.data is None:
        return load_workload(config.model, cache_dir=config.cache_dir, progress=progress, warn=warn)
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
    return smallest_for_score(proxy.scores, costs, space, allowed)

"""`hwsearch codesign`: the search at every point of a grid of hardware variants, and the front across them.

    hwsearch codesign --target eyeriss-like --sweep glb_kb=64,128,256 --sweep pe=12x14,16x16 --budget 2MB

The trained model, its layer graph, the options and the proxy table do not depend on the
hardware: `hwsearch.runs.prepared` builds them once and every point reuses them in memory. A point
redoes only its cost table and its study, which give its best plan within the budgets (lowest
proxy) and that plan's predicted size, latency and energy. The points on the front across
hardware (best proxy, latency, energy and area: no other point is as good on all four and
better on one) then run whole, with retraining and export, as `hwsearch --target <the
point's target.yaml>` would run alone; `--retrain all` runs every point so, `--retrain none`
none.

A point whose budgets no plan can meet on its hardware is kept in the table as infeasible;
a sweep where no point can meet them is an error, like a single run's.

Results: `results/codesign-<target>-<budgets>-<model>-<time>/` (written as `.partial` and
renamed at the end): codesign.json, points.csv, report.md, accuracy.png, front.png, and
points/<id>/ per point: target.yaml (the target it ran on), study.journal, candidates.csv,
and run/, the run folder of a retrained point.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import yaml

from cost_models.area import MAC_UM2, NODE, RF_UM2_PER_BYTE, SRAM_UM2_PER_BYTE, hardware_figures
from hwsearch.budget import Budgets, format_joules, format_seconds
from hwsearch.config import RunConfig, check
from hwsearch.errors import BudgetInfeasible, HwsearchError
from hwsearch.codesign.sweep import Point, Sweep, SweepError, build_grid, format_value

RETRAIN = ("front", "all", "none")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class CodesignConfig:
    run: RunConfig                  # every point's run settings; run.target is the target swept, run.run_id the folder
    sweeps: tuple[str, ...]         # the --sweep specs as written
    retrain: str = "front"          # front: only the points on the front across hardware; all; none
    front_tol_pct: float = 5.0      # differences smaller than this (percent) are ties on the front


def plan_grid(config: CodesignConfig) -> list[Point]:
    """Check everything a sweep can get wrong and build every point's target, before anything heavy runs."""
    check(config.run)
    if config.retrain not in RETRAIN:
        raise HwsearchError(f"--retrain {config.retrain!r} must be one of {', '.join(RETRAIN)}")
    if not 0 <= config.front_tol_pct < 100:
        raise HwsearchError(f"--front-tol is a percentage from 0 to below 100, got {config.front_tol_pct:g}")
    if config.run.objectives != "proxy":
        raise HwsearchError(f"--objectives {config.run.objectives!r}: codesign compares hardware points by the "
                            "best plan each allows within the budgets, so it takes --objectives proxy only; bound "
                            "latency or energy with --latency or --energy instead")
    if config.run.run_id is not None and not _SAFE_NAME.fullmatch(config.run.run_id):
        raise HwsearchError(f"--run-id {config.run.run_id!r} is not a plain folder name: use letters, digits, '.', "
                            "'_' and '-' only, not starting with '.'")
    return build_grid(config.run.target, [Sweep.parse(text) for text in config.sweeps])


def run_codesign(config: CodesignConfig, progress=None, *, points: list[Point] | None = None) -> tuple[dict, Path]:
    """Run the sweep; returns its summary and its results folder (nothing is left behind on failure)."""
    points = points if points is not None else plan_grid(config)
    budgets = Budgets.parse(size=config.run.budget, latency=config.run.latency, energy=config.run.energy)
    from hwsearch.runs import model_label

    stamp = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    base = points[0].target.name.partition("[")[0]
    run_id = config.run.run_id or re.sub(r"[^A-Za-z0-9._-]", "",
                                         f"codesign-{base}-{budgets.label()}-{model_label(config.run.model)}-{stamp}")
    final_dir = Path(config.run.results_dir) / run_id
    if final_dir.exists():
        raise HwsearchError(f"results folder {final_dir} already exists; pass another --run-id or remove it")
    work_dir = final_dir.with_name(f".{run_id}.partial")
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    try:
        summary = _sweep(config, points, budgets, run_id, work_dir, progress)
        work_dir.rename(final_dir)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return summary, final_dir


class _BarsOnly:
    """A run's progress bars without its log lines: a sweep prints one line per point instead."""

    def __init__(self, progress):
        from rich.console import Console

        self._progress, self.console = progress, Console(quiet=True)

    def __getattr__(self, name):
        """Everything else (add_task, advance, update, remove_task, ...) is the bars' own."""
        return getattr(self._progress, name)


def _sweep(config: CodesignConfig, points: list[Point], budgets: Budgets, run_id: str, out: Path, progress) -> dict:
    from hwsearch.codesign import report as codesign_report
    from hwsearch.runs import prepare

    def say(message: str) -> None:
        if progress:
            progress.console.print(message, soft_wrap=True, markup=False, highlight=False)

    bars = _BarsOnly(progress) if progress else None
    start = time.perf_counter()
    prepared = prepare(config.run, bars)
    workload = prepared.workload
    say(f"model {config.run.model}: test {workload.data.metric_name} {workload.test_accuracy:.2%}; proxy table "
        f"{prepared.proxy_source}, built once for all {len(points)} hardware points")
    timings = {"prepare": round(time.perf_counter() - start, 2)}

    task = progress.add_task("codesign: hardware points", total=len(points)) if progress else None
    records = []
    clock = time.perf_counter()
    for point in points:
        record = _search_point(point, config.run, budgets, prepared, out / "points" / point.id, bars)
        records.append(record)
        say(_line(record))
        if progress:
            progress.advance(task)
    if progress:
        progress.remove_task(task)
    timings["points"] = round(time.perf_counter() - clock, 2)
    feasible = [r for r in records if r["status"] == "ok"]
    if not feasible:
        reasons = "; ".join(f"{r['id']} ({r['label']}): {r['error']}" for r in records[:2])
        raise BudgetInfeasible(f"none of the {len(records)} hardware points can meet the budgets: {reasons}"
                               + ("; ..." if len(records) > 2 else ""))
    front = front_ids(records, config.front_tol_pct / 100)
    for record in records:
        record["on_front"] = record["id"] in front

    clock = time.perf_counter()
    chosen = [] if config.retrain == "none" else [r for r in feasible if config.retrain == "all" or r["on_front"]]
    task = progress.add_task("codesign: retraining", total=len(chosen)) if progress and chosen else None
    for record in chosen:
        point = next(p for p in points if p.id == record["id"])
        record["retrained"] = _retrain_point(point, config.run, prepared, out / "points" / point.id, bars)
        say(_line(record))
        if progress:
            progress.advance(task)
    if task is not None:
        progress.remove_task(task)
    timings["retrain"] = round(time.perf_counter() - clock, 2)

    summary = {
        "run_id": run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": config.run.model,
        "metric": workload.data.metric_name,
        "target": points[0].target.name.partition("[")[0],
        "budgets": budgets.limits(),
        "sweeps": [{"key": key, "values": [format_value(v) for v in values]}
                   for key, values in _sweep_values(points).items()],
        "retrain": config.retrain,
        "baseline_test_accuracy": workload.test_accuracy,
        "prepared": {"builds": 1, "proxy_table": prepared.proxy_source, "timings_s": prepared.timings_s},
        "points": records,
        "front": [r["id"] for r in records if r["on_front"]],
        "front_tol_pct": config.front_tol_pct,
        "area_model": {"node": NODE, "mac_um2": MAC_UM2, "rf_um2_per_byte": RF_UM2_PER_BYTE,
                       "sram_um2_per_byte": SRAM_UM2_PER_BYTE,
                       "source": "Accelergy eyeriss_like example ART @67b75f2 (cost_models/area.py)"},
        "timings_s": timings,
        "config": {**asdict(config.run), "sweeps": list(config.sweeps), "retrain": config.retrain,
                   "front_tol_pct": config.front_tol_pct},
    }
    clock = time.perf_counter()
    codesign_report.write_points(out / "points.csv", summary)
    codesign_report.plot_accuracy(out / "accuracy.png", summary)
    codesign_report.plot_front(out / "front.png", summary)
    codesign_report.write_report(out / "report.md", summary)
    timings["report"] = round(time.perf_counter() - clock, 2)
    timings["total"] = round(time.perf_counter() - start, 2)
    (out / "codesign.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _search_point(point: Point, config: RunConfig, budgets: Budgets, prepared, folder: Path, bars) -> dict:
    """One point's cost table and study on the prepared tables: its best plan within the budgets as a record."""
    from hwsearch.runs import binding_budget, hardware_tables
    from hwsearch.runs.results import write_candidates
    from hwsearch.study import SearchConfig, run_study

    folder.mkdir(parents=True)
    (folder / "target.yaml").write_text(
        f"# {point.target.name}: written by hwsearch codesign from the target {point.target.name.partition('[')[0]}"
        f" with {point.label}\n# (the base target's file cites the source of every figure)\n"
        + yaml.safe_dump(point.data, sort_keys=False))
    record = {"id": point.id, "label": point.label, "params": {k: format_value(v) for k, v in point.params.items()},
              "values": {k: _numeric(v) for k, v in point.params.items()}, "target": point.target.name,
              "fields": point.fields, "hardware": hardware_figures(point.target), "folder": f"points/{point.id}",
              "status": "ok", "error": None, "on_front": False, "best": None, "retrained": None}
    search = SearchConfig(budgets, sampler=config.sampler, trials=config.trials, seed=config.seed)
    try:
        tables = hardware_tables(prepared, point.target, search, config)
        searched = run_study(proxy=tables.proxy, costs=tables.costs, config=search,
                             storage_path=folder / "study.journal", study_name=point.id, progress=bars)
    except BudgetInfeasible as exc:
        return {**record, "status": "infeasible", "error": str(exc)}
    write_candidates(folder / "candidates.csv", searched.candidates, tables.options)
    best = min((c for c in searched.candidates if c.feasible), key=lambda c: (c.proxy, c.trial))
    record["best"] = {"proxy": best.proxy, "size_bytes": int(best.totals["size_bytes"]),
                      "latency_s": best.totals["latency_s"], "energy_j": best.totals["energy_j"],
                      "binding": binding_budget(budgets, best.totals), "trial": best.trial,
                      "exact_optimum": searched.optimum.score, "compression": plan_label(best.plan(tables.options))}
    return record


def _retrain_point(point: Point, config: RunConfig, prepared, folder: Path, bars) -> dict:
    """The whole run (retraining, export, report) on the point's target, into `folder`/run."""
    from hwsearch.runs import run

    run_config = replace(config, target=point.target.name, run_id="run", results_dir=str(folder))
    summary, _ = run(run_config, bars, prepared=prepared, target=point.target,
                     target_text=(folder / "target.yaml").read_text())
    final = summary["final"]
    return {"test_accuracy": final["test_accuracy"], "size_bytes": final["size_bytes"],
            "latency_s": final["latency_s"], "energy_j": final["energy_j"], "proxy": final["proxy"],
            "best_proxy": summary["search"]["best_proxy"], "fine_tuned_kept": final["fine_tuned_kept"],
            "floor_met": summary["accuracy_floor"]["met"], "epochs": config.finetune_epochs,
            "folder": f"points/{point.id}/run"}


def _numeric(value) -> float:
    """A swept value on a plot axis: a PE array shape counts its PEs."""
    if isinstance(value, tuple):
        n = 1
        for factor in value:
            n *= factor
        return float(n)
    return float(value)


def _sweep_values(points: list[Point]) -> dict[str, list]:
    values: dict[str, list] = {}
    for point in points:
        for key, value in point.params.items():
            if value not in values.setdefault(key, []):
                values[key].append(value)
    return values


def front_ids(records: list[dict], tolerance: float = 0.0) -> set[str]:
    """The feasible points no other point beats on best proxy, latency, energy and area (where every
    point has one): as good within `tolerance` (a fraction) on all four, and better by more than it on one.

    With a tolerance, differences smaller than it are ties: the analytical model is no closer than a
    few percent (4% latency, 23% energy against ZigZag on eyeriss-like), and without one a point
    0.3% faster for 13% more area stays on the front. Among the points no other beats outright, those
    beaten within the tolerance leave the front.
    """
    ok = [r for r in records if r["status"] == "ok"]
    with_area = all(r["hardware"]["area_mm2"] is not None for r in ok)

    def key(r):
        b = r["best"]
        return (b["proxy"], b["latency_s"], b["energy_j"]) + ((r["hardware"]["area_mm2"],) if with_area else ())

    def beats(q, r, tol):
        return (all(a <= b * (1 + tol) for a, b in zip(key(q), key(r)))
                and any(a < b * (1 - tol) for a, b in zip(key(q), key(r))))
    exact = [r for r in ok if not any(beats(q, r, 0.0) for q in ok)]
    front = [r for r in exact if not any(beats(q, r, tolerance) for q in exact if q is not r)]
    return {r["id"] for r in front or exact}


def plan_label(plan: dict) -> str:
    """A plan in a few words: layers per bit width, then how many take each method and how many are
    pruned: `8b:9 4b:12; svd 3, codebook 2; pruned 4`."""
    options = [o for option in plan.values() for o in getattr(option, "members", (option,))]  # units hold several
    bits = Counter(o.bits for o in options)
    parts = [" ".join(f"{'fp32' if b == 32 else f'{b}b'}:{n}" for b, n in sorted(bits.items(), reverse=True))]
    methods = Counter(("codebook" if getattr(o, "codebook", 0) else None) or getattr(o, "method", None)
                      or ("svd" if o.rank is not None else "dense") for o in options)
    methods.pop("dense", None)
    if methods:
        parts.append(", ".join(f"{m} {n}" for m, n in sorted(methods.items())))
    sparse = sum(getattr(o, "sparsity", 0) > 0 for o in options)
    if sparse:
        parts.append(f"pruned {sparse}")
    return "; ".join(parts)


def _line(r: dict) -> str:
    if r["status"] != "ok":
        return f"{r['id']} {r['label']}: infeasible ({r['error']})"
    b, hw, t = r["best"], r["hardware"], r["retrained"]
    area = f", {hw['area_mm2']:.3f} mm2" if hw["area_mm2"] is not None else ""
    tested = f"; retrained: test {t['test_accuracy']:.2%} ({t['folder']})" if t else ""
    return (f"{r['id']} {r['label']}: proxy {b['proxy']:.4g}, {format_seconds(b['latency_s'])}, "
            f"{format_joules(b['energy_j'])}{area}; {b['compression']}{tested}")


__all__ = ["CodesignConfig", "RETRAIN", "SweepError", "front_ids", "plan_grid", "plan_label", "run_codesign"]

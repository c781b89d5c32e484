"""The run folder a person reads: summary.json, candidates.csv, pareto.csv, layers.csv, plan.json, plots and report.md."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")   # files only; no display here or in CI
import matplotlib.pyplot as plt  # noqa: E402

from hwsearch.atomic_write import atomic_write, write_text  # noqa: E402
from hwsearch.budget import Budgets, format_size  # noqa: E402
from cost_models import CostTable  # noqa: E402
from hwsearch.study import Candidate, Optimum  # noqa: E402
from hwsearch.compression import Option, Plan  # noqa: E402


PROXY_LABEL = {"weighted": "proxy: predicted output divergence (nats)", "sum": "proxy: summed relative output error"}


def write_run(out: Path, summary: dict, budgets: Budgets, tables, searched, confirmed) -> None:
    """Everything a finished run writes beside model.hws: summary.json, the tables, the plots and report.md."""
    costs, options, chosen = tables.costs, tables.options, confirmed.chosen
    plan = chosen.plan(options)
    original_bytes = {n: int(costs.column(n, "weight_bytes")[tables.baseline_choice[n]]) for n in options}
    chosen_bytes = {n: int(costs.column(n, "weight_bytes")[chosen.choice[n]]) for n in options}
    write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    write_candidates(out / "candidates.csv", searched.result.candidates, options)
    write_pareto(out / "pareto.csv", searched.front)
    write_layers(out / "layers.csv", plan, costs, chosen.choice, tables.baseline_choice)
    write_plan(out / "plan.json", plan)
    plot_pareto(out / "pareto.png", searched.result.candidates, searched.front, budgets,
                [(c, r.test_accuracy) for c, r in confirmed.runs], chosen, summary["baseline"]["size_bytes"],
                searched.result.optimum, searched.second, tables.baselines, summary["config"]["proxy"])
    plot_layers(out / "layers.png", plan, original_bytes, chosen_bytes)
    write_report(out / "report.md", summary, plan, chosen_bytes, original_bytes)


def write_candidates(path: Path, cands: list[Candidate], options: dict[str, list[Option]]) -> None:
    """Every trial, one row: figures first, then each layer's option label."""
    names = list(options)
    with atomic_write(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "feasible", "proxy", "size_bytes", "latency_ms", "energy_mj", "macs", *names])
        for c in sorted(cands, key=lambda c: c.trial):
            t = c.totals
            writer.writerow([c.trial, int(c.feasible), f"{c.proxy:.6f}", int(t["size_bytes"]),
                             f"{t['latency_s'] * 1e3:.4f}", f"{t['energy_j'] * 1e3:.4f}", int(t["macs"]),
                             *(options[n][c.choice[n]].label for n in names)])


def write_pareto(path: Path, front: list[Candidate]) -> None:
    """The feasible Pareto front: trial, proxy and whole-model costs, one row per plan."""
    with atomic_write(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "source", "proxy", "size_bytes", "latency_s", "energy_j", "macs", "dram_bytes"])
        for c in front:
            t = c.totals
            writer.writerow([c.trial, c.source, f"{c.proxy:.6f}", int(t["size_bytes"]), f"{t['latency_s']:.6g}",
                             f"{t['energy_j']:.6g}", int(t["macs"]), int(t["dram_bytes"])])


def write_layers(path: Path, plan: Plan, costs: CostTable, choice: dict[str, int], baseline: dict[str, int]) -> None:
    """The chosen model layer by layer: option, and its bytes, MACs, latency and energy against fp32."""
    with atomic_write(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["layer", "option", "weight_bytes", "fp32_weight_bytes", "macs", "latency_s", "fp32_latency_s",
                         "energy_j", "fp32_energy_j", "dram_bytes"])
        for name, option in plan.items():
            row = dict(zip(costs.columns, costs.values[name][choice[name]]))
            fp32 = dict(zip(costs.columns, costs.values[name][baseline[name]]))
            writer.writerow([name, option.label, int(row["weight_bytes"]), int(fp32["weight_bytes"]), int(row["macs"]),
                             f"{row['latency_s']:.6g}", f"{fp32['latency_s']:.6g}", f"{row['energy_j']:.6g}",
                             f"{fp32['energy_j']:.6g}", int(row["dram_bytes"])])


def write_plan(path: Path, plan: Plan) -> None:
    write_text(path, json.dumps({name: option.to_dict() for name, option in plan.items()}, indent=1) + "\n")


def plot_pareto(path: Path, cands: list[Candidate], front: list[Candidate], budgets: Budgets,
                retrained: list[tuple[Candidate, float]], chosen: Candidate, baseline_bytes: int,
                optimum: Optimum | None = None, second: str | None = None,
                baselines: dict[str, Candidate] | None = None, proxy: str = "weighted") -> None:
    """Every trial against the proxy (size, or the second objective), the front, the budget, the exact
    optimum, the baselines' plans and the retrained candidates."""
    key = second or "size_bytes"
    scale, unit = {"size_bytes": (1e-6, "file size (MB)"), "latency_s": (1e3, "predicted latency (ms)"),
                   "energy_j": (1e3, "predicted energy (mJ)")}[key]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    feasible = [c for c in cands if c.feasible]
    infeasible = [c for c in cands if not c.feasible]
    ax.scatter([c.totals[key] * scale for c in infeasible], [c.proxy for c in infeasible],
               s=10, c="0.75", label="over a budget")
    ax.scatter([c.totals[key] * scale for c in feasible], [c.proxy for c in feasible],
               s=10, c="tab:blue", alpha=0.6, label="within the budgets")
    ax.plot([c.totals[key] * scale for c in front], [c.proxy for c in front],
            "-", c="tab:orange", lw=1.5, label="Pareto front")
    limit = budgets.limits().get(key)
    if limit is not None:
        ax.axvline(limit * scale, c="tab:red", ls="--", lw=1, label=f"budget {budgets.describe(key)}")
    if optimum is not None:
        ax.scatter([optimum.totals[key] * scale], [optimum.score], marker="x", s=90, c="k", zorder=6,
                   label="exact optimum (separable)")
    for (label, cand), marker in zip((baselines or {}).items(), ("s", "^", "v", "P")):
        ax.scatter([cand.totals[key] * scale], [cand.proxy], marker=marker, s=45, facecolors="none",
                   edgecolors="tab:purple", zorder=6, label=label)
    for i, (cand, test_accuracy) in enumerate(retrained):
        marker = "*" if cand is chosen else "D"
        ax.scatter([cand.totals[key] * scale], [cand.proxy], marker=marker, s=120 if cand is chosen else 40,
                   c="tab:green", edgecolors="k", zorder=5)
        ax.annotate(f"{test_accuracy:.1%}", (cand.totals[key] * scale, cand.proxy),
                    textcoords="offset points", xytext=(6, 6 + 11 * i), fontsize=8)   # staggered: points can overlap
    ax.set_xlabel(unit + (f"; fp32 model is {format_size(baseline_bytes)}" if key == "size_bytes" else ""))
    ax.set_ylabel(PROXY_LABEL.get(proxy, "proxy"))
    ax.set_yscale("symlog", linthresh=max(min((c.proxy for c in feasible if c.proxy > 0), default=1e-3), 1e-6))
    ax.set_title("Search: every trial (retrained: test accuracy; star: exported)")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def plot_layers(path: Path, plan: Plan, original_bytes: dict[str, int], chosen_bytes: dict[str, int]) -> None:
    """Per-layer bytes before and after, labelled with the chosen option."""
    names = list(plan)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(names) + 1.2), dpi=110)
    y = range(len(names))
    ax.barh(y, [original_bytes[n] for n in names], color="0.85", label="fp32")
    ax.barh(y, [chosen_bytes[n] for n in names], color="tab:blue", label="compressed")
    for i, name in enumerate(names):
        ax.text(chosen_bytes[name], i, " " + plan[name].label, va="center", fontsize=7)
    ax.set_yticks(list(y), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("bytes in the file (log scale)")
    ax.set_title("Per-layer choices")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def write_report(path: Path, summary: dict, plan: Plan, chosen_bytes: dict[str, int], original_bytes: dict[str, int]) -> None:
    b, f = summary["baseline"], summary["final"]
    lines = [
        f"# hwsearch run {summary['run_id']}",
        "",
        f"Model `{summary['model']}` on target `{summary['target']}`, budgets: "
        + ", ".join(_budget_text(k, v) for k, v in summary["budgets"].items())
        + (f". The binding budget (least slack left) is the {summary['binding'].split('_')[0]}." if summary["binding"]
           else "."),
        "",
        *_floor_text(summary),
        "| | baseline (fp32) | exported |",
        "|---|---|---|",
        f"| test {summary.get('metric', 'top-1 accuracy')} | {b['test_accuracy']:.2%} | {f['test_accuracy']:.2%} |",
        f"| file size | {b['size_bytes']:,} B | {f['size_bytes']:,} B |",
        f"| predicted latency | {_budget_text('latency_s', b['latency_s'])} | {_budget_text('latency_s', f['latency_s'])} |",
        f"| predicted energy | {_budget_text('energy_j', b['energy_j'])} | {_budget_text('energy_j', f['energy_j'])} |",
        f"| MACs | {b['macs']:,} | {f['macs']:,} |",
        "",
        f"Compression ratio {summary['compression_ratio']:.2f}x. The exported file `{summary['artifact']}` "
        f"reloads with a largest output difference of {summary['reload_max_abs_diff']:g}.",
        f"Search: {summary['search']['trials']} trials ({summary['search']['sampler']}, "
        f"{summary['search']['strategy']}), {summary['search']['feasible']} within the budgets "
        f"({summary['search']['repaired']} repaired into them), {summary['search']['pareto']} on the Pareto front. "
        f"Exact optimum of the separable problem: proxy {summary['search']['exact_optimum']['proxy']:.4g} "
        f"({summary['search']['exact_optimum']['method']}); best found {summary['search']['best_proxy']:.4g} "
        f"({summary['search']['gap_to_exact_optimum']:+.2%}). {len(summary['retrained'])} retrained "
        f"({summary['config']['finetune_epochs']} epochs each):",
        "",
        "| trial | proxy | output divergence, measured | size (B) | val. acc. compressed | val. acc. fine-tuned | kept "
        "| test acc. |",
        "|---|---|---|---|---|---|---|---|",
        *(f"| {r['trial']} | {r['proxy']:.4g} | {r.get('end_to_end_divergence', float('nan')):.4g} | {r['size_bytes']:,} | "
          f"{r['val_before']:.2%} | "
          f"{r['val_after']:.2%} | {'fine-tuned' if r['fine_tuned_kept'] else 'compressed'} | "
          f"{r['test_accuracy']:.2%} |" for r in summary["retrained"]),
        "",
        *_baselines_text(summary),
        "![Pareto](pareto.png)",
        "",
        "## Per-layer choices",
        "",
        "| layer | option | bytes | of fp32 |",
        "|---|---|---|---|",
        *(f"| {n} | {o.label} | {chosen_bytes[n]:,} | {chosen_bytes[n] / original_bytes[n]:.1%} |" for n, o in plan.items()),
        "",
        "![Per-layer choices](layers.png)",
        "",
    ]
    write_text(path, "\n".join(lines))


def _baselines_text(summary: dict) -> list[str]:
    """The plans a search-free practitioner would pick, from the same tables (benchmarks/search_quality.py retrains them)."""
    rows = summary["search"].get("baselines", {})
    if not rows:
        return []
    f = summary["final"]
    return ["Against plans chosen without a search (same tables; not retrained):", "",
            "| plan | proxy | size (B) | predicted latency | predicted energy |", "|---|---|---|---|---|",
            f"| exported (trial {f['trial']}) | {f['proxy']:.4g} | {f['size_bytes']:,} | "
            f"{_budget_text('latency_s', f['latency_s'])} | {_budget_text('energy_j', f['energy_j'])} |",
            *(f"| {label} | {r['proxy']:.4g} | {r['size_bytes']:,} | {_budget_text('latency_s', r['latency_s'])} | "
              f"{_budget_text('energy_j', r['energy_j'])} |" for label, r in rows.items()), ""]


def _budget_text(key: str, value: float) -> str:
    from hwsearch.budget import format_joules, format_seconds

    return {"size_bytes": lambda v: f"{int(v):,} bytes", "latency_s": format_seconds, "energy_j": format_joules}[key](value)


def _floor_text(summary: dict) -> list[str]:
    floor = summary["accuracy_floor"]
    if floor["met"]:
        return []
    hint = (f"A budget of about {floor['suggested_size_bytes']:,} bytes would likely meet it (from the retrained "
            "candidates' accuracy against their proxy, and the exact frontier)."
            if floor.get("suggested_size_bytes") else "No plan seen scores well enough: relax the budgets.")
    return [f"**Accuracy floor not met**: the exported model loses {floor['drop'] * 100:.1f} points of test "
            f"accuracy, more than the {floor['max_drop'] * 100:g} allowed. {hint}", ""]

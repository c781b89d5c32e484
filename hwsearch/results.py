"""The run folder a person reads: summary.json, candidates.csv, plan.json, plots and report.md."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")   # files only; no display here or in CI
import matplotlib.pyplot as plt  # noqa: E402

from hwsearch.budget import format_size  # noqa: E402
from hwsearch.options import Option, Plan  # noqa: E402
from hwsearch.study import Candidate  # noqa: E402


def write_candidates(path: Path, cands: list[Candidate], options: dict[str, list[Option]]) -> None:
    """Every trial, one row: figures first, then each layer's option label."""
    names = list(options)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "feasible", "proxy", "size_bytes", "latency_ms", "energy_mj", "macs", *names])
        for c in sorted(cands, key=lambda c: c.trial):
            t = c.totals
            writer.writerow([c.trial, int(c.feasible), f"{c.proxy:.6f}", int(t["size_bytes"]),
                             f"{t['latency_s'] * 1e3:.4f}", f"{t['energy_j'] * 1e3:.4f}", int(t["macs"]),
                             *(options[n][c.choice[n]].label for n in names)])


def write_plan(path: Path, plan: Plan) -> None:
    path.write_text(json.dumps({name: option.to_dict() for name, option in plan.items()}, indent=1) + "\n")


def plot_pareto(path: Path, cands: list[Candidate], front: list[Candidate], budget_bytes: int,
                retrained: list[tuple[Candidate, float]], chosen: Candidate, baseline_bytes: int) -> None:
    """Size against proxy error for every trial, the front, the budget and the retrained candidates."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    feasible = [c for c in cands if c.feasible]
    infeasible = [c for c in cands if not c.feasible]
    mb = 1e-6
    ax.scatter([c.totals["size_bytes"] * mb for c in infeasible], [c.proxy for c in infeasible],
               s=10, c="0.75", label="over budget")
    ax.scatter([c.totals["size_bytes"] * mb for c in feasible], [c.proxy for c in feasible],
               s=10, c="tab:blue", alpha=0.6, label="within budget")
    ax.plot([c.totals["size_bytes"] * mb for c in front], [c.proxy for c in front],
            "-", c="tab:orange", lw=1.5, label="Pareto front")
    ax.axvline(budget_bytes * mb, c="tab:red", ls="--", lw=1, label=f"budget {format_size(budget_bytes)}")
    for i, (cand, test_accuracy) in enumerate(retrained):
        marker = "*" if cand is chosen else "D"
        ax.scatter([cand.totals["size_bytes"] * mb], [cand.proxy], marker=marker, s=120 if cand is chosen else 40,
                   c="tab:green", edgecolors="k", zorder=5)
        ax.annotate(f"{test_accuracy:.1%}", (cand.totals["size_bytes"] * mb, cand.proxy),
                    textcoords="offset points", xytext=(6, 6 + 11 * i), fontsize=8)   # staggered: points can overlap
    ax.set_xlabel(f"file size (MB); fp32 model is {format_size(baseline_bytes)}")
    ax.set_ylabel("proxy: summed relative output error")
    ax.set_title("Search: every trial (retrained: test accuracy; star: exported)")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
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
    fig.savefig(path)
    plt.close(fig)


def write_report(path: Path, summary: dict, plan: Plan, chosen_bytes: dict[str, int], original_bytes: dict[str, int]) -> None:
    b, f = summary["baseline"], summary["final"]
    lines = [
        f"# hwsearch run {summary['run_id']}",
        "",
        f"Model `{summary['model']}` on target `{summary['target']}`, size budget {summary['budget']} "
        f"({summary['budget_bytes']:,} bytes).",
        "",
        "| | baseline (fp32) | exported |",
        "|---|---|---|",
        f"| test accuracy | {b['test_accuracy']:.2%} | {f['test_accuracy']:.2%} |",
        f"| file size | {b['size_bytes']:,} B | {f['size_bytes']:,} B |",
        f"| predicted latency | {b['latency_s'] * 1e3:.3f} ms | {f['latency_s'] * 1e3:.3f} ms |",
        f"| predicted energy | {b['energy_j'] * 1e3:.3f} mJ | {f['energy_j'] * 1e3:.3f} mJ |",
        f"| MACs | {b['macs']:,} | {f['macs']:,} |",
        "",
        f"Compression ratio {summary['compression_ratio']:.2f}x. The exported file `{summary['artifact']}` "
        f"reloads with a largest output difference of {summary['reload_max_abs_diff']:g}.",
        f"Search: {summary['search']['trials']} trials, {summary['search']['feasible']} within budget, "
        f"{summary['search']['pareto']} on the Pareto front; {len(summary['retrained'])} retrained "
        f"({summary['config']['finetune_epochs']} epochs each):",
        "",
        "| trial | proxy | size (B) | val. acc. compressed | val. acc. fine-tuned | kept | test acc. |",
        "|---|---|---|---|---|---|---|",
        *(f"| {r['trial']} | {r['proxy']:.4f} | {r['size_bytes']:,} | {r['val_before']:.2%} | "
          f"{r['val_after']:.2%} | {'fine-tuned' if r['fine_tuned_kept'] else 'compressed'} | "
          f"{r['test_accuracy']:.2%} |" for r in summary["retrained"]),
        "",
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
    path.write_text("\n".join(lines))

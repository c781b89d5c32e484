"""The folder of a co-design sweep as a person reads it: points.csv, report.md, accuracy.png and front.png.

Everything here reads the sweep's summary (codesign.json) and nothing else, so the table
and the plots always agree with it.
"""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")   # files only; no display here or in CI
import matplotlib.pyplot as plt  # noqa: E402

from hwsearch.budget import format_joules, format_seconds, format_size  # noqa: E402

COLUMNS = ["point", "status", "onchip_bytes", "mac_units", "area_mm2", "best_proxy", "size_bytes", "latency_ms",
           "energy_mj", "binding", "on_front", "compression", "test_acc_retrained", "folder", "error"]


def _row(r: dict) -> dict:
    hw, b, t = r["hardware"], r["best"] or {}, r["retrained"] or {}
    return {"point": r["id"], **r["params"], "status": r["status"], "onchip_bytes": hw["onchip_bytes"],
            "mac_units": hw["mac_units"], "area_mm2": "" if hw["area_mm2"] is None else f"{hw['area_mm2']:.4f}",
            "best_proxy": f"{b['proxy']:.6f}" if b else "", "size_bytes": b.get("size_bytes", ""),
            "latency_ms": f"{b['latency_s'] * 1e3:.6g}" if b else "",
            "energy_mj": f"{b['energy_j'] * 1e3:.6g}" if b else "", "binding": b.get("binding") or "",
            "on_front": int(r["on_front"]), "compression": b.get("compression", ""),
            "test_acc_retrained": f"{t['test_accuracy']:.4f}" if t else "", "folder": t["folder"] if t else r["folder"],
            "error": r["error"] or ""}


def write_points(path: Path, summary: dict) -> None:
    """One row per hardware point: the swept values, the hardware's cost, the best plan's figures."""
    keys = [s["key"] for s in summary["sweeps"]]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["point", *keys, *COLUMNS[1:]])
        writer.writeheader()
        for record in summary["points"]:
            writer.writerow(_row(record))


def plot_accuracy(path: Path, summary: dict) -> None:
    """Best proxy (every point) and test accuracy (the retrained points) against each swept parameter,
    one line per setting of the other parameters."""
    keys = [s["key"] for s in summary["sweeps"]]
    ok = [r for r in summary["points"] if r["status"] == "ok"]
    groups_most = max(len({tuple(r["params"][k] for k in keys if k != key) for r in ok}) for key in keys)
    fig, axes = plt.subplots(2, len(keys), figsize=(4.4 * len(keys) + 0.8, 6.4 + 0.16 * groups_most), dpi=110,
                             squeeze=False, sharex="col", sharey="row")
    if not any(r["retrained"] for r in ok):
        axes[1, 0].text(0.5, 0.5, "no point retrained", transform=axes[1, 0].transAxes, ha="center", fontsize=9)
    for col, key in enumerate(keys):
        others = [k for k in keys if k != key]
        groups: dict[tuple, list[dict]] = {}
        for r in ok:
            groups.setdefault(tuple(r["params"][k] for k in others), []).append(r)
        for group, members in groups.items():
            members.sort(key=lambda r: r["values"][key])
            label = ", ".join(f"{k}={v}" for k, v in zip(others, group)) or None
            line, = axes[0, col].plot([r["values"][key] for r in members], [r["best"]["proxy"] for r in members],
                                      "o-", ms=4, lw=1, label=label)
            tested = [r for r in members if r["retrained"]]
            axes[1, col].plot([r["values"][key] for r in tested], [r["retrained"]["test_accuracy"] for r in tested],
                              "o-", ms=5, lw=1, c=line.get_color())
        ticks = {r["values"][key]: r["params"][key] for r in ok}     # the swept values, as written
        low, high = min(ticks), max(ticks)
        for row in (0, 1):
            if low > 0 and high / low >= 8:
                axes[row, col].set_xscale("log")
            axes[row, col].set_xticks(list(ticks), list(ticks.values()), fontsize=8)
            axes[row, col].minorticks_off()
        axes[1, col].set_xlabel(key + (" (PE array; axis: PE count)" if key == "pe" else ""))
        if 1 < len(groups):
            axes[1, col].legend(*axes[0, col].get_legend_handles_labels(), fontsize=6.5, loc="upper center",
                                bbox_to_anchor=(0.5, -0.2), frameon=False)
    axes[0, 0].set_ylabel("best proxy within the budgets\n(summed relative output error)")
    axes[1, 0].set_ylabel(f"test {summary['metric']} after retraining\n(retrained points only)")
    infeasible = len(summary["points"]) - len(ok)
    fig.suptitle(f"{summary['model']} on {summary['target']} variants, budgets {_budgets(summary)}"
                 + (f" ({infeasible} infeasible points not shown)" if infeasible else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_front(path: Path, summary: dict) -> None:
    """Latency against energy of every point's best plan, coloured by area (or on-chip bytes); the
    front across hardware marked, and listed under the plot with the compression of each."""
    ok = [r for r in summary["points"] if r["status"] == "ok"]
    has_area = all(r["hardware"]["area_mm2"] is not None for r in ok)
    colour = [r["hardware"]["area_mm2"] if has_area else r["hardware"]["onchip_bytes"] / 1024 for r in ok]
    (t_scale, t_unit), (e_scale, e_unit) = (_scale([r["best"]["latency_s"] for r in ok], "s"),
                                            _scale([r["best"]["energy_j"] for r in ok], "J"))
    x = [r["best"]["latency_s"] * t_scale for r in ok]
    y = [r["best"]["energy_j"] * e_scale for r in ok]
    front = [r["on_front"] for r in ok]
    listed = sorted((r for r in ok if r["on_front"]), key=lambda r: r["id"])
    height = 5.2 + 0.13 * len(listed)      # inches: the plot, then one 7-point line per front point under it
    fig, ax = plt.subplots(figsize=(9, height), dpi=110)
    style = {"cmap": "viridis", "vmin": min(colour), "vmax": max(colour)}
    dots = ax.scatter([a for a, f in zip(x, front) if not f], [b for b, f in zip(y, front) if not f],
                      c=[c for c, f in zip(colour, front) if not f], s=30, label="dominated", **style)
    stars = ax.scatter([a for a, f in zip(x, front) if f], [b for b, f in zip(y, front) if f],
                       c=[c for c, f in zip(colour, front) if f], s=170, marker="*", edgecolors="k", zorder=5,
                       label="front across hardware", **style)
    for i, (r, a, b) in enumerate(sorted(zip(ok, x, y), key=lambda t: (t[1], t[2]))):
        ax.annotate(r["id"], (a, b), fontsize=7, textcoords="offset points", xytext=(6, 4 if i % 2 else -10),
                    fontweight="bold" if r["on_front"] else "normal")     # alternating: close points stay legible
    ax.margins(0.1)
    fig.colorbar(stars if any(front) else dots, ax=ax,
                 label="area estimate (mm^2 at 32 nm)" if has_area else "on-chip memory (KiB)")
    ax.set_xlabel(f"predicted latency of the best plan ({t_unit})")
    ax.set_ylabel(f"predicted energy of the best plan ({e_unit})")
    ax.set_title(f"{summary['model']} on {summary['target']} variants, budgets {_budgets(summary)}\nfront: no "
                 f"other point as good on best proxy, latency, energy and area (within "
                 f"{summary.get('front_tol_pct', 0):g}%), and better on one", fontsize=8)
    ax.legend(fontsize=8, loc="best")
    rows = [f"{r['id']}  {r['label']}:  {r['best']['compression']}"
            + (f";  test {r['retrained']['test_accuracy']:.2%} retrained" if r["retrained"] else "") for r in listed]
    fig.text(0.01, 0.01, "\n".join(rows), fontsize=7, family="monospace", va="bottom")
    fig.tight_layout(rect=(0, (0.13 * len(rows) + 0.1) / height, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def _scale(values: list[float], unit: str) -> tuple[float, str]:
    """The SI prefix that puts the largest value between 1 and 1000."""
    top = max(values)
    for prefix, scale in (("", 1.0), ("m", 1e3), ("u", 1e6), ("n", 1e9)):
        if top * scale >= 1:
            return scale, prefix + unit
    return 1e12, "p" + unit


def _budgets(summary: dict) -> str:
    text = {"size_bytes": lambda v: format_size(int(v)), "latency_s": format_seconds, "energy_j": format_joules}
    return ", ".join(text[k](v) for k, v in summary["budgets"].items())


def write_report(path: Path, summary: dict) -> None:
    keys = [s["key"] for s in summary["sweeps"]]
    ok = [r for r in summary["points"] if r["status"] == "ok"]
    retrained = sum(r["retrained"] is not None for r in summary["points"])
    t = summary["timings_s"]
    lines = [
        f"# hwsearch codesign {summary['run_id']}",
        "",
        f"Model `{summary['model']}` (test {summary['metric']} {summary['baseline_test_accuracy']:.2%} in fp32) on "
        f"variants of `{summary['target']}`, budgets {_budgets(summary)}; swept: "
        + "; ".join(f"{s['key']} = {', '.join(s['values'])}" for s in summary["sweeps"]) + ".",
        "",
        f"{len(summary['points'])} hardware points, {len(ok)} within the budgets, {len(summary['front'])} on the "
        f"front across hardware (no other point as low on best proxy, latency, energy and area, and lower on one); "
        f"{retrained} retrained ({summary['retrain']}). The model and the proxy table were prepared once "
        f"({summary['prepared']['proxy_table']}) and reused by every point. Wall time {t['prepare']:.0f} s preparing, "
        f"{t['points']:.0f} s for the points, {t['retrain']:.0f} s retraining.",
        "",
        "Latency, energy and size are the predictions for each point's best plan (lowest proxy within the "
        "budgets); test accuracy is the exported model's after retraining, where the point was retrained. Area: "
        f"MACs and storage only, at {summary['area_model']['node']} (cost_models/area.py).",
        "",
        "| point | " + " | ".join(keys) + " | on-chip | MACs | area mm² | best proxy | size | latency | energy | "
        "test acc. (retrained) | compression | front |",
        "|---|" + "---|" * len(keys) + "---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["points"]:
        hw, b = r["hardware"], r["best"]
        head = f"| {r['id']} | " + " | ".join(r["params"][k] for k in keys)
        area = "" if hw["area_mm2"] is None else f"{hw['area_mm2']:.3f}"
        if b is None:
            lines.append(f"{head} | {hw['onchip_bytes'] / 1024:,.1f} KiB | {hw['mac_units']:,} | {area} | "
                         f"infeasible | | | | | | |")
            continue
        tested = f"{r['retrained']['test_accuracy']:.2%}" if r["retrained"] else ""
        lines.append(f"{head} | {hw['onchip_bytes'] / 1024:,.1f} KiB | {hw['mac_units']:,} | {area} | "
                     f"{b['proxy']:.4f} | {b['size_bytes']:,} B | {format_seconds(b['latency_s'])} | "
                     f"{format_joules(b['energy_j'])} | {tested} | {b['compression']} | "
                     f"{'yes' if r['on_front'] else ''} |")
    infeasible = [r for r in summary["points"] if r["status"] != "ok"]
    if infeasible:
        lines += ["", "Infeasible points:", ""] + [f"- {r['id']} ({r['label']}): {r['error']}" for r in infeasible]
    lines += ["", "![Best proxy and accuracy against each swept parameter](accuracy.png)", "",
              "![Latency, energy and area of every point](front.png)", "",
              "Each point's folder is `points/<point>/`: target.yaml (the target it ran on), study.journal and "
              "candidates.csv (its study), and run/, the whole run of a retrained point (summary.json, report.md, "
              "model.hws).", ""]
    path.write_text("\n".join(lines))

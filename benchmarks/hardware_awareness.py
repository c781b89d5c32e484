"""Does pricing the hardware buy accuracy? The hardware-aware plan against the best size-only plan at the
same predicted latency, on a phone CPU and an accelerator.

    python benchmarks/hardware_awareness.py [--model resnet_fashion]
                                            # writes results/benchmarks/hardware_awareness.{json,md,png}

For each target (cortex-a76, eyeriss-like) and each latency budget (a share of the uncompressed
model's predicted latency):

- hardware-aware: hwsearch's study under the latency budget, on the target's cost table (exact
  optimum as warm start, 300 trials, whole-plan costs); the best feasible plan by proxy;
- size-only: what a tool that only knows bytes would export. For a ladder of size budgets, the
  exact optimum of the same proxy under that size alone; of those whose predicted latency on the
  target meets the budget, the one with the best proxy.

Both are fine-tuned with the default recipe and seeds 0 and 1 and tested on the 10,000 test
images (95% bootstrap intervals; exact McNemar p-value, paired per image and seed). The picture
shows, per layer, the option each plan gives each layer on each target.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from rich.progress import Progress  # noqa: E402

from tables import OUT, tables  # noqa: E402
from harness import SEEDS, confirm, interval, mcnemar  # noqa: E402
from hwsearch.budget import Budgets  # noqa: E402
from hwsearch.study import SearchConfig, exact_optimum, run_study, search_space  # noqa: E402

TARGETS = ("cortex-a76", "eyeriss-like")
SHARES = (0.5, 0.3)          # latency budgets as shares of the uncompressed model's predicted latency
LADDER = 40                  # size budgets tried for the size-only plan, geometric from smallest to fp32


def hardware_aware(t, budgets: Budgets) -> dict[str, int] | None:
    with tempfile.TemporaryDirectory() as folder:
        found = run_study(proxy=t.proxy, costs=t.costs, config=SearchConfig(budgets), storage_path=Path(folder) / "j",
                          study_name="aware")
    feasible = [c for c in found.candidates if c.feasible]
    return min(feasible, key=lambda c: c.proxy).choice if feasible else None


def size_only(t, latency_s: float) -> tuple[dict[str, int] | None, int | None]:
    """The best-proxy plan among the size-optimal ones (a ladder of size budgets) that meet `latency_s`."""
    fp32 = t.costs.totals(t.fp32_choice)["size_bytes"]
    smallest = t.costs.fixed_bytes + sum(float(t.costs.column(n, "weight_bytes").min()) for n in t.names)
    best, best_size = None, None
    for size in np.geomspace(smallest * 1.02, fp32, LADDER):
        limits = Budgets(size_bytes=int(size))
        found = exact_optimum(t.proxy.scores, t.costs, limits, search_space(t.proxy, t.costs, SearchConfig(limits)))
        if found is None or t.costs.totals(found.choice)["latency_s"] > latency_s:
            continue
        if best is None or found.score < best.score:
            best, best_size = found, int(size)
    return (best.choice, best_size) if best else (None, None)


def describe(t, choice: dict[str, int]) -> dict:
    totals = t.costs.totals(choice)
    return {"size_bytes": int(totals["size_bytes"]), "latency_s": totals["latency_s"], "energy_j": totals["energy_j"],
            "proxy": float(sum(t.proxy.scores[n][i] for n, i in choice.items())),
            "plan": {n: t.options[n][i].label for n, i in choice.items()},
            "layer_bytes": {n: int(t.costs.column(n, "weight_bytes")[i]) for n, i in choice.items()}}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet_fashion")
    model = p.parse_args(argv).model
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows = []
    with Progress() as progress:
        task = progress.add_task("targets x budgets", total=len(TARGETS) * len(SHARES))
        for target in TARGETS:
            t = tables(model, target, progress=progress)
            base = t.costs.totals(t.fp32_choice)["latency_s"]
            for share in SHARES:
                latency = base * share
                aware = hardware_aware(t, Budgets(latency_s=latency))
                blind, ladder_size = size_only(t, latency)
                row = {"target": target, "share": share, "latency_budget_s": latency, "fp32_latency_s": base}
                for label, choice in (("hardware-aware", aware), ("size-only", blind)):
                    if choice is None:
                        row[label] = None
                        continue
                    outcome = confirm(t, choice)
                    mean, low, high = interval(outcome.correct)
                    row[label] = {**describe(t, choice), "test_accuracy": mean, "interval": [low, high],
                                  "before": outcome.before, "per_seed": outcome.correct.mean(axis=1).tolist(),
                                  "_correct": outcome.correct}
                if row["size-only"]:
                    row["size-only"]["size_budget"] = ladder_size
                if row["hardware-aware"] and row["size-only"]:
                    row["p"] = mcnemar(row["hardware-aware"]["_correct"], row["size-only"]["_correct"])
                rows.append(row)
                progress.advance(task)
    for row in rows:
        for label in ("hardware-aware", "size-only"):
            if row[label]:
                row[label].pop("_correct")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "hardware_awareness.json").write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model": model, "seeds": SEEDS,
        "test_images": 10_000, "rows": rows}, indent=1) + "\n")
    lines = write(model, rows)
    (OUT / "hardware_awareness.md").write_text("\n".join(lines) + "\n")
    plot(model, rows)
    print("\n".join(lines))


def write(model: str, rows: list[dict]) -> list[str]:
    lines = ["# Hardware-awareness: the plan priced on the target against the best size-only plan", "",
             f"{model} on Fashion-MNIST; both plans fine-tuned with the default recipe, seeds "
             f"{', '.join(map(str, SEEDS))}, test accuracy on 10,000 images with its 95% bootstrap interval; p: exact "
             "McNemar test between the two. Size-only: the best-proxy plan among the exact optima under a ladder of "
             "size budgets whose predicted latency meets the budget. Command: `python benchmarks/hardware_awareness.py`.",
             "", "| target | latency budget | plan | predicted latency | size | proxy | test accuracy | p |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for label in ("hardware-aware", "size-only"):
            e = r[label]
            budget = f"{r['latency_budget_s'] * 1e3:.3g} ms ({r['share']:.0%} of fp32)"
            if e is None:
                lines.append(f"| {r['target']} | {budget} | {label} | none meets it | | | | |")
                continue
            p = f"{r['p']:.2g}" if label == "hardware-aware" and "p" in r else ""
            lines.append(f"| {r['target']} | {budget} | {label} | {e['latency_s'] * 1e3:.3g} ms | {e['size_bytes']:,} B | "
                         f"{e['proxy']:.4g} | {e['test_accuracy']:.2%} [{e['interval'][0]:.2%}, {e['interval'][1]:.2%}] "
                         f"| {p} |")
    lines += ["", "Per-layer plans (option labels: bN uniform N-bit codes, kN codebook, rR rank, sS sparsity; see "
              "docs/compression.md):", ""]
    for r in rows:
        for label in ("hardware-aware", "size-only"):
            if r[label]:
                lines.append(f"- {r['target']}, {r['share']:.0%}, {label}: " +
                             ", ".join(f"{n} {o}" for n, o in r[label]["plan"].items()))
    return lines


def plot(model: str, rows: list[dict]) -> None:
    """Bytes per layer of each plan, labelled with its option, one panel per target and budget."""
    shown = [r for r in rows if r["hardware-aware"] and r["size-only"]]
    if not shown:
        return
    names = list(shown[0]["hardware-aware"]["plan"])
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 0.3 * len(names) + 1.8), dpi=100,
                             squeeze=False, sharey=True)
    y = np.arange(len(names))
    for ax, r in zip(axes[0], shown):
        for offset, label, colour in ((-0.2, "hardware-aware", "tab:blue"), (0.2, "size-only", "tab:orange")):
            e = r[label]
            ax.barh(y + offset, [e["layer_bytes"][n] for n in names], height=0.4, color=colour,
                    label=f"{label}: {e['test_accuracy']:.2%}")
            for i, n in enumerate(names):
                ax.text(e["layer_bytes"][n], i + offset, " " + e["plan"][n], va="center", fontsize=5)
        ax.set_xscale("log")
        ax.set_title(f"{r['target']}, {r['latency_budget_s'] * 1e3:.3g} ms", fontsize=9)
        ax.set_xlabel("bytes in the file", fontsize=8)
        ax.legend(fontsize=6, loc="lower right")
    axes[0][0].set_yticks(y, names, fontsize=6)
    axes[0][0].invert_yaxis()
    fig.suptitle(f"{model}: per-layer choices, priced on the target or by size only", fontsize=10)
    fig.tight_layout()
    fig.savefig(OUT / "hardware_awareness.png")


if __name__ == "__main__":
    main()

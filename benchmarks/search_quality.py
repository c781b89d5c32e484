"""hwsearch against the baselines on Fashion-MNIST: test accuracy on 10,000 images after the same fine-tuning.

    python benchmarks/search_quality.py [--models lenet5_fashion,lenet300_100_fashion]
                                        # writes results/benchmarks/search_quality.{json,md,png,npz}

On each model (target cortex-a76), at five file budgets from mild to so tight that uniform
quantisation collapses, every method's plan is fine-tuned with the default recipe with two seeds
(`harness.confirm`) and tested on the 10,000 test images:

- uniform: the same option in every layer, the best by proxy that fits
- uniform, first and last fp32: the common practice of leaving the first and last layers alone
- random search: Optuna's RandomSampler over the same per-layer options, as many trials as the
  default study (300), the best feasible plan by proxy
- greedy: per-layer allocation by proxy per byte (hwsearch.study.greedy_plan)
- Torch-Pruning: structured L1 filter pruning (torch-pruning's MagnitudePruner, the classifier
  kept), one ratio for all layers, the smallest that brings the fp32 tensors under the budget
- HAWQ-V3 style: Hessian-trace sensitivities and an integer program over bit widths (allocators)
- AIMET style: greedy per-layer compression-ratio selection on measured accuracy (allocators)
- exact optimum: the separable optimum of the weighted proxy (hwsearch's warm start)
- hwsearch: the default run (`hwsearch.runs.pipeline.run`: study, top-3 retrained, best on validation)

Reported per method and budget: test accuracy (mean of the two seeds) with its 95% bootstrap
interval over test images, and the exact McNemar p-value of hwsearch against it (paired per image
and seed). Per-image results are kept in search_quality.npz (bit-packed) to recompute any statistic.
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
import torch_pruning as tp  # noqa: E402
from rich.progress import Progress  # noqa: E402

from tables import OUT, tables  # noqa: E402
from allocators import aimet_plan, hawq_plan, plan_bytes  # noqa: E402
from harness import SEEDS, Outcome, confirm, confirm_module, correct_on, interval, mcnemar  # noqa: E402
from cost_models import load_target, make_cost_model, plan_costs  # noqa: E402
from hwsearch.budget import Budgets  # noqa: E402
from hwsearch.config import RunConfig  # noqa: E402
from hwsearch.export import artifact  # noqa: E402
from hwsearch.graph import LayerGraph  # noqa: E402
from hwsearch.runs import run  # noqa: E402
from hwsearch.study import (SearchConfig, exact_optimum, greedy_plan, run_study, search_space,
                            uniform_plan)  # noqa: E402

# fp32 files: 1,724,546 and 1,066,641 B; the smallest feasible files: 14,307 and 8,647 B
# (the mildest lets 4-bit codes everywhere fit, so that bit allocations have a budget to allocate)
BUDGETS = {"lenet5_fashion": (250_000, 100_000, 40_000, 25_000, 17_000),
           "lenet300_100_fashion": (150_000, 60_000, 30_000, 15_000, 10_000)}
METHODS = ("uniform", "uniform, first and last fp32", "random search", "greedy", "Torch-Pruning", "HAWQ-V3 style",
           "AIMET style", "exact optimum", "hwsearch")


def plan_methods(t, budgets: Budgets, seed: int) -> dict[str, dict[str, int] | None]:
    layers = LayerGraph.trace(t.work.model, t.work.example).compressible()
    space = search_space(t.proxy, t.costs, SearchConfig(budgets))
    with tempfile.TemporaryDirectory() as tmp:
        randomly = run_study(proxy=t.proxy, costs=t.costs, storage_path=Path(tmp) / "random.journal", study_name="r",
                             config=SearchConfig(budgets, strategy="constrained", sampler="random",
                                                 trials=RunConfig().trials, seed=seed, warm_start=False))
    feasible = [c for c in randomly.candidates if c.feasible]
    return {"uniform": uniform_plan(layers, t.proxy, t.costs, budgets),
            "uniform, first and last fp32": uniform_plan(layers, t.proxy, t.costs, budgets, keep_ends=True),
            "random search": min(feasible, key=lambda c: c.proxy).choice if feasible else None,
            "greedy": greedy_plan(space, t.proxy, t.costs, budgets),
            "HAWQ-V3 style": hawq_plan(t, budgets),
            "AIMET style": aimet_plan(t, budgets),
            "exact optimum": exact_optimum(t.proxy.scores, t.costs, budgets, space).choice}


def fp32_bytes(model: torch.nn.Module) -> int:
    """What the pruned model's tensors take as raw fp32 (no header: generous to the baseline)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values() if t.is_floating_point())


def torch_pruned(model: torch.nn.Module, example: torch.Tensor, budget: int) -> torch.nn.Module | None:
    """The least-pruned copy (one channel ratio for every layer, classifier kept) whose fp32 tensors fit."""
    def pruned(ratio: float) -> torch.nn.Module:
        copied = copy.deepcopy(model)
        last = [m for m in copied.modules() if isinstance(m, torch.nn.Linear)][-1:]
        pruner = tp.pruner.MagnitudePruner(copied, example, importance=tp.importance.MagnitudeImportance(p=1),
                                           pruning_ratio=ratio, ignored_layers=last)
        pruner.step()
        return copied

    low, high = 0.0, 0.99
    if fp32_bytes(pruned(high)) > budget:
        return None
    for _ in range(14):
        middle = (low + high) / 2
        if fp32_bytes(pruned(middle)) <= budget:
            high = middle
        else:
            low = middle
    return pruned(high)


def hwsearch_outcome(work, model_name: str, budget: int) -> tuple[Outcome, dict]:
    """The default run once per seed (the seed drives its study and its fine-tuning), its exported file tested."""
    runs = []
    for seed in SEEDS:
        with tempfile.TemporaryDirectory() as folder:
            summary, out = run(replace(RunConfig(), model=model_name, budget=str(budget), seed=seed,
                                       results_dir=folder, run_id="hwsearch"))
            exported, _ = artifact.load(out / "model.hws")
            runs.append((summary, exported))
    correct = np.stack([correct_on(model, work.data.test) for _, model in runs])
    finals = [s["final"] for s, _ in runs]
    figures = {k: float(np.mean([f[k] for f in finals])) for k in ("size_bytes", "latency_s", "energy_j", "proxy")}
    return Outcome(correct, [f["val_accuracy"] for f in finals],
                   float(np.mean([f["accuracy_before_finetune"] for f in finals]))), figures


def measure(model_name: str, progress: Progress) -> tuple[list[dict], dict[str, np.ndarray]]:
    t = tables(model_name, progress=progress)
    cost_model = make_cost_model("analytical", load_target("cortex-a76"))
    task = progress.add_task(f"{model_name}: methods", total=len(BUDGETS[model_name]) * len(METHODS))
    rows, per_image = [], {}
    for budget in BUDGETS[model_name]:
        budgets = Budgets(size_bytes=budget)
        outcomes = {}
        for method, choice in plan_methods(t, budgets, seed=0).items():
            if choice is None:
                pass
            elif method == "HAWQ-V3 style":       # options outside the grid: sized on the layers themselves
                outcomes[method] = (confirm(t, choice), {"size_bytes": plan_bytes(t, choice),
                                                         "plan": {n: o.label for n, o in choice.items()}})
            else:
                totals = t.costs.totals(choice)
                outcomes[method] = (confirm(t, choice), {"size_bytes": int(totals["size_bytes"]),
                                                         "latency_s": totals["latency_s"], "energy_j": totals["energy_j"],
                                                         "proxy": float(sum(t.proxy.scores[n][i] for n, i in
                                                                            choice.items())),
                                                         "plan": {n: t.options[n][i].label for n, i in choice.items()}})
            progress.advance(task)
        pruned = torch_pruned(t.work.model, t.work.example, budget)
        if pruned is not None:
            costs = plan_costs(cost_model, LayerGraph.trace(pruned, t.work.example), {})
            outcomes["Torch-Pruning"] = (confirm_module(t.work, pruned), {
                "size_bytes": fp32_bytes(pruned), "latency_s": costs["latency_s"], "energy_j": costs["energy_j"]})
        progress.advance(task)
        outcomes["hwsearch"] = hwsearch_outcome(t.work, model_name, budget)
        progress.advance(task)
        ours = outcomes["hwsearch"][0]
        for method in METHODS:
            row = {"model": model_name, "budget_bytes": budget, "method": method, "found": method in outcomes}
            if method in outcomes:
                outcome, figures = outcomes[method]
                mean, low, high = interval(outcome.correct)
                row.update({**figures, "test_accuracy": mean, "interval": [low, high], "before": outcome.before,
                            "per_seed": outcome.correct.mean(axis=1).tolist(), "val_accuracy": outcome.val,
                            "p_hwsearch_vs": None if method == "hwsearch" else mcnemar(ours.correct, outcome.correct)})
                per_image[f"{model_name}|{budget}|{method}"] = np.packbits(outcome.correct, axis=1)
            rows.append(row)
    return rows, per_image


def write(rows: list[dict], models: list[str]) -> list[str]:
    lines = ["# hwsearch against the baselines on Fashion-MNIST", "",
             f"Test accuracy on the 10,000 test images after the same fine-tuning ({RunConfig().finetune_epochs} epochs, "
             f"the default recipe), mean over seeds {', '.join(map(str, SEEDS))}, with its 95% bootstrap interval over "
             "test images; p: exact McNemar test of hwsearch against the method (paired per image and seed; "
             "p < 0.05: the difference is significant). File size on disk; latency predicted on cortex-a76. "
             "Command: `python benchmarks/search_quality.py`.", ""]
    for model_name in models:
        budgets = BUDGETS[model_name]
        lines += [f"## {model_name}", "", "| method | " + " | ".join(f"{b:,} B" for b in budgets) + " |",
                  "|---|" + "---|" * len(budgets)]
        for method in METHODS:
            cells = []
            for budget in budgets:
                r = next(r for r in rows if (r["model"], r["budget_bytes"], r["method"]) == (model_name, budget, method))
                if not r["found"]:
                    cells.append("no plan fits")
                    continue
                p = "" if r["p_hwsearch_vs"] is None else f"; p {r['p_hwsearch_vs']:.2g}"
                cells.append(f"{r['test_accuracy']:.2%} [{r['interval'][0]:.2%}, {r['interval'][1]:.2%}]{p}; "
                             f"{r['size_bytes']:,.0f} B")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def plot(rows: list[dict], models: list[str]) -> None:
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), dpi=100, squeeze=False)
    for ax, model_name in zip(axes[0], models):
        for method, marker in zip(METHODS, "os^vDxP<>*"):
            pts = sorted((r["budget_bytes"], r["test_accuracy"], *r["interval"]) for r in rows
                         if r["model"] == model_name and r["method"] == method and r["found"])
            if pts:
                x = [p[0] / 1e3 for p in pts]
                ax.errorbar(x, [p[1] for p in pts], yerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]],
                            marker=marker, lw=2.5 if method == "hwsearch" else 1, capsize=2, label=method)
        ax.set_xscale("log")
        ax.set_xlabel("size budget (KB)")
        ax.set_ylabel("test accuracy after fine-tuning (10,000 images)")
        ax.set_title(model_name)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "search_quality.png")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(BUDGETS), help="comma-separated built-in models")
    models = p.parse_args(argv).models.split(",")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows, per_image = [], {}
    with Progress() as progress:
        for name in models:
            more, images = measure(name, progress)
            rows += more
            per_image.update(images)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "search_quality.json").write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data": "fashion-mnist", "test_images": 10_000,
        "target": "cortex-a76", "seeds": SEEDS, "budgets": {m: BUDGETS[m] for m in models}, "rows": rows}, indent=1) + "\n")
    np.savez_compressed(OUT / "search_quality.npz", **per_image)
    lines = write(rows, models)
    (OUT / "search_quality.md").write_text("\n".join(lines) + "\n")
    plot(rows, models)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

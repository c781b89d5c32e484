"""hwsearch against the baselines, side by side: test accuracy after the same retraining, size, latency.

    python benchmarks/search_quality.py      # writes results/benchmarks/search_quality.{json,md,png}

On resnet18_digits and lenet5_digits (target cortex-a76), at four file budgets each down to the
smallest feasible size, every method's plan is fine-tuned with the default recipe (two seeds) and
tested:

- uniform: the same option in every layer, the best by proxy that fits
- uniform, first and last fp32: the common practice of leaving the first and last layers alone
- random search: Optuna's RandomSampler over the same per-layer options, as many trials as the
  default study (300), the best feasible plan by proxy
- greedy: AIMET-style per-layer allocation (hwsearch.study.baselines.greedy_plan)
- Torch-Pruning: structured L1 filter pruning (torch-pruning's MagnitudePruner, the classifier
  kept), one ratio for all layers, the smallest that brings the fp32 tensors under the budget
- exact optimum: the separable optimum of the weighted proxy (hwsearch's warm start)
- hwsearch: the default run (`hwsearch.runs.pipeline.run`: study, top-3 retrained, best on validation)
"""
from __future__ import annotations

import copy
import json
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
import torch_pruning as tp  # noqa: E402
from rich.progress import Progress  # noqa: E402

from tables import OUT, tables  # noqa: E402
from cost_models import load_target, make_cost_model, plan_costs  # noqa: E402
from hwsearch.study import (SearchConfig, exact_optimum, greedy_plan, run_study, search_space, smallest,
                             uniform_plan)  # noqa: E402
from hwsearch.budget import Budgets  # noqa: E402
from hwsearch.config import RunConfig  # noqa: E402
from hwsearch.graph import LayerGraph  # noqa: E402
from hwsearch.runs import retrain, run  # noqa: E402
from hwsearch.workloads import TrainConfig, train  # noqa: E402

BUDGETS = {"resnet18_digits": (2_000_000, 1_000_000, 600_000, "smallest"),
           "lenet5_digits": (16_000, 8_000, 4_000, "smallest")}
SEEDS = (0, 1)
METHODS = ("uniform", "uniform, first and last fp32", "random search", "greedy", "Torch-Pruning", "exact optimum",
           "hwsearch")


def plan_methods(t, budgets: Budgets, layers, seed: int) -> dict[str, dict[str, int] | None]:
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
            "exact optimum": exact_optimum(t.proxy.scores, t.costs, budgets, space).choice}


def fp32_bytes(model: torch.nn.Module) -> int:
    """What the pruned model's tensors take as raw fp32 (no header: generous to the baseline)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values() if t.is_floating_point())


def torch_pruned(model: torch.nn.Module, example: torch.Tensor, budget: int) -> torch.nn.Module | None:
    """The least-pruned copy (one channel ratio for every layer, classifier kept) whose fp32 tensors fit."""
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1:]

    def pruned(ratio: float) -> torch.nn.Module:
        copied = copy.deepcopy(model)
        last = [m for m in copied.modules() if isinstance(m, torch.nn.Linear)][-1:] if classifier else []
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


def retrain_module(model: torch.nn.Module, data, recipe: TrainConfig) -> tuple[float, float]:
    """Fine-tune a pruned model as hwsearch.runs.retraining does: keep the fine-tuned weights unless validation drops."""
    before = data.evaluate(model, data.val)
    tuned = copy.deepcopy(model)
    train(tuned, data, recipe)
    kept = tuned if data.evaluate(tuned, data.val) >= before else model
    return data.evaluate(kept, data.val), data.evaluate(kept, data.test)


def measure(model_name: str, progress: Progress) -> list[dict]:
    t = tables(model_name, progress=progress)
    graph = LayerGraph.trace(t.work.model, t.work.example)
    layers = graph.compressible()
    cost_model = make_cost_model("analytical", load_target("cortex-a76"))
    config = RunConfig()
    floor = int(smallest(t.costs, Budgets(size_bytes=10**15), "size_bytes",
                         search_space(t.proxy, t.costs, SearchConfig(Budgets(size_bytes=10**15)))))
    budgets_bytes = [floor if b == "smallest" else b for b in BUDGETS[model_name]]
    task = progress.add_task(f"{model_name}: methods", total=len(budgets_bytes) * len(SEEDS) * len(METHODS))
    rows = []
    for budget in budgets_bytes:
        budgets = Budgets(size_bytes=budget)
        for seed in SEEDS:
            recipe = TrainConfig(epochs=config.finetune_epochs, max_lr=config.finetune_lr, seed=seed,
                                 max_shift=t.work.data.max_shift, schedule=config.finetune_schedule,
                                 distill=config.finetune_distill)
            base = {"model": model_name, "budget_bytes": budget, "seed": seed}
            for method, choice in plan_methods(t, budgets, layers, seed).items():
                if choice is None:
                    rows.append({**base, "method": method, "found": False})
                else:
                    result = retrain(t.work.model, t.plan(choice), t.work.data, recipe, calibration=t.calibration)
                    totals = t.costs.totals(choice)
                    rows.append({**base, "method": method, "found": True, "size_bytes": int(totals["size_bytes"]),
                                 "latency_s": totals["latency_s"], "energy_j": totals["energy_j"],
                                 "proxy": float(sum(t.proxy.scores[n][i] for n, i in choice.items())),
                                 "test_before": result.accuracy_before, "val_accuracy": result.val_accuracy,
                                 "test_accuracy": result.test_accuracy})
                progress.advance(task)
            pruned = torch_pruned(t.work.model, t.work.example, budget)
            if pruned is None:
                rows.append({**base, "method": "Torch-Pruning", "found": False})
            else:
                costs = plan_costs(cost_model, LayerGraph.trace(pruned, t.work.example), {})
                val, test = retrain_module(pruned, t.work.data, recipe)
                rows.append({**base, "method": "Torch-Pruning", "found": True, "size_bytes": fp32_bytes(pruned),
                             "latency_s": costs["latency_s"], "energy_j": costs["energy_j"],
                             "test_before": t.work.data.evaluate(pruned, t.work.data.test),
                             "val_accuracy": val, "test_accuracy": test})
            progress.advance(task)
            with tempfile.TemporaryDirectory() as folder:
                summary, _ = run(replace(config, model=model_name, budget=str(budget), seed=seed, results_dir=folder,
                                         run_id="hwsearch"))
            final = summary["final"]
            rows.append({**base, "method": "hwsearch", "found": True, "size_bytes": final["size_bytes"],
                         "latency_s": final["latency_s"], "energy_j": final["energy_j"], "proxy": final["proxy"],
                         "test_before": final["accuracy_before_finetune"], "val_accuracy": final["val_accuracy"],
                         "test_accuracy": final["test_accuracy"]})
            progress.advance(task)
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["model"], r["budget_bytes"]) for r in rows}, key=lambda k: (list(BUDGETS).index(k[0]), -k[1]))
    for model_name, budget in keys:
        for method in METHODS:
            mine = [r for r in rows if (r["model"], r["budget_bytes"], r["method"]) == (model_name, budget, method)]
            found = [r for r in mine if r["found"]]
            entry = {"model": model_name, "budget_bytes": budget, "method": method, "found": len(found) == len(mine)}
            if found:
                entry.update({k: sum(r[k] for r in found) / len(found)
                              for k in ("test_accuracy", "test_before", "size_bytes", "latency_s")})
            out.append(entry)
    return out


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with Progress() as progress:
        rows = [row for name in BUDGETS for row in measure(name, progress)]
    summary = summarise(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "search_quality.json").write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(
        timespec="seconds"), "target": "cortex-a76", "seeds": SEEDS, "summary": summary, "rows": rows}, indent=1) + "\n")
    lines = ["# hwsearch against the baselines", "",
             f"Test accuracy after the same fine-tuning ({RunConfig().finetune_epochs} epochs, the default recipe), "
             f"mean over seeds {', '.join(map(str, SEEDS))}; before fine-tuning in brackets; file size; latency "
             "predicted on cortex-a76. Command: `python benchmarks/search_quality.py`.", ""]
    for model_name in BUDGETS:
        budgets = sorted({e["budget_bytes"] for e in summary if e["model"] == model_name}, reverse=True)
        lines += [f"## {model_name}", "", "| method | " + " | ".join(f"{b:,} B" for b in budgets) + " |",
                  "|---|" + "---|" * len(budgets)]
        for method in METHODS:
            cells = []
            for budget in budgets:
                e = next(e for e in summary if (e["model"], e["budget_bytes"], e["method"]) == (model_name, budget, method))
                cells.append(f"{e['test_accuracy']:.1%} ({e['test_before']:.0%}); {e['size_bytes']:,.0f} B; "
                             f"{e['latency_s'] * 1e3:.3g} ms" if e["found"] else "no plan fits")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    (OUT / "search_quality.md").write_text("\n".join(lines) + "\n")
    plot(summary)
    print("\n".join(lines))


def plot(summary: list[dict]) -> None:
    fig, axes = plt.subplots(1, len(BUDGETS), figsize=(11, 4), dpi=100)
    for ax, model_name in zip(axes, BUDGETS):
        for method, marker in zip(METHODS, "os^vDxP*"):
            pts = sorted((e["budget_bytes"], e["test_accuracy"]) for e in summary
                         if e["model"] == model_name and e["method"] == method and e["found"])
            ax.plot([p[0] / 1e3 for p in pts], [p[1] for p in pts], marker=marker, lw=2.5 if method == "hwsearch" else 1,
                    label=method)
        ax.set_xscale("log")
        ax.set_xlabel("budget (KB)")
        ax.set_ylabel("test accuracy after fine-tuning")
        ax.set_title(model_name)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "search_quality.png")


if __name__ == "__main__":
    main()

"""Which fine-tuning recipe recovers the most accuracy at tight budgets, in the time the default run has?

    python benchmarks/retraining.py [--models lenet300_100_fashion]   # writes results/benchmarks/retraining.{json,md}

The exact optimum (weighted proxy) of lenet5_fashion and lenet300_100_fashion at budgets where
the compressed model loses accuracy before fine-tuning is fine-tuned with each recipe, two seeds
each: more epochs, distillation from the original model (Hinton et al. 2015; T = 4), another
learning-rate schedule or peak. Reported per recipe: mean accuracy on the 5,000 validation
images (what hwsearch chooses on) and on the 10,000 test images, over plans and seeds, and
seconds per candidate. The default is the recipe with the best mean validation accuracy.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone

from rich.progress import Progress

from tables import OUT, tables
from hwsearch.budget import Budgets
from hwsearch.study import SearchConfig, exact_optimum, search_space
from hwsearch.runs import retrain
from hwsearch.workloads import TrainConfig

# two tight budgets per model (its file at 2-3% and 1.5% of fp32)
BUDGETS = {"lenet5_fashion": (40_000, 25_000),
           "lenet300_100_fashion": (25_000, 15_000)}
BASE = TrainConfig(epochs=2, max_lr=0.01)
RECIPES = {
    "2 epochs (one-cycle, peak lr 0.01)": BASE,
    "1 epoch": replace(BASE, epochs=1),
    "4 epochs": replace(BASE, epochs=4),
    "2 epochs, cosine": replace(BASE, schedule="cosine"),
    "2 epochs, peak lr 0.003": replace(BASE, max_lr=0.003),
    "2 epochs, peak lr 0.03": replace(BASE, max_lr=0.03),
    "2 epochs, distillation 0.5": replace(BASE, distill=0.5),
    "4 epochs, distillation 0.5": replace(BASE, epochs=4, distill=0.5),
}
SEEDS = (0, 1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(BUDGETS), help="comma-separated, of " + ", ".join(BUDGETS))
    models = parser.parse_args(argv).models.split(",")
    rows = []
    with Progress() as progress:
        for model_name, budgets in ((m, BUDGETS[m]) for m in models):
            t = tables(model_name, progress=progress)
            plans = []
            for budget in budgets:
                limits = Budgets(size_bytes=budget)
                found = exact_optimum(t.proxy.scores, t.costs, limits, search_space(t.proxy, t.costs, SearchConfig(limits)))
                plans.append((budget, t.plan(found.choice)))
            task = progress.add_task(f"{model_name}: recipes", total=len(RECIPES) * len(plans) * len(SEEDS))
            for label, recipe in RECIPES.items():
                for budget, plan in plans:
                    for seed in SEEDS:
                        start = time.perf_counter()
                        result = retrain(t.work.model, plan, t.work.data,
                                         replace(recipe, seed=seed, max_shift=t.work.data.max_shift),
                                         calibration=t.calibration)
                        rows.append({"model": model_name, "recipe": label, "budget_bytes": budget, "seed": seed,
                                     "seconds": time.perf_counter() - start, "val_before": result.val_before,
                                     "test_before": result.accuracy_before, "val_after": result.val_after,
                                     "val_accuracy": result.val_accuracy, "test_accuracy": result.test_accuracy})
                        progress.advance(task)
    summary = []
    for label, recipe in RECIPES.items():
        entry = {"recipe": label, "config": {k: v for k, v in asdict(recipe).items() if k in
                                             ("epochs", "max_lr", "schedule", "distill", "temperature")}}
        for model_name in models:
            mine = [r for r in rows if r["recipe"] == label and r["model"] == model_name]
            entry[model_name] = {"val_accuracy": sum(r["val_after"] for r in mine) / len(mine),
                                 "test_accuracy": sum(r["test_accuracy"] for r in mine) / len(mine),
                                 "seconds_per_candidate": sum(r["seconds"] for r in mine) / len(mine)}
        summary.append(entry)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "retraining.json").write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                                     "budgets": {m: BUDGETS[m] for m in models}, "seeds": SEEDS, "summary": summary,
                                                     "rows": rows}, indent=1) + "\n")
    names = models
    lines = ["# Fine-tuning recipes at tight budgets", "",
             "Exact optimum of the weighted proxy at " + "; ".join(
                 f"{n}: {', '.join(f'{b:,}' for b in BUDGETS[n])} B" for n in names)
             + f"; seeds {', '.join(map(str, SEEDS))}. Mean validation accuracy after fine-tuning (the fine-tuned "
             "weights, whether or not they beat the compressed ones), mean test accuracy of the kept weights, seconds "
             "per candidate on this machine. Command: `python benchmarks/retraining.py`.", "",
             "| recipe | " + " | ".join(f"{n} val | {n} test | {n} s" for n in names) + " |",
             "|---|" + "---|---|---|" * len(names)]
    for entry in summary:
        lines.append(f"| {entry['recipe']} | " + " | ".join(
            f"{entry[n]['val_accuracy']:.2%} | {entry[n]['test_accuracy']:.2%} | {entry[n]['seconds_per_candidate']:.1f}"
            for n in names) + " |")
    before = {n: sum(r["val_before"] for r in rows if r["model"] == n and r["recipe"] == next(iter(RECIPES)))
              / len([r for r in rows if r["model"] == n and r["recipe"] == next(iter(RECIPES))]) for n in names}
    lines += ["", "Validation accuracy before fine-tuning: " + ", ".join(f"{n} {v:.2%}" for n, v in before.items()) + "."]
    (OUT / "retraining.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

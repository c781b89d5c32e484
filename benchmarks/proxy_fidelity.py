"""Which proxy predicts accuracy after retraining? Plans scored by each proxy, then retrained and tested.

    python benchmarks/proxy_fidelity.py      # writes results/benchmarks/proxy_fidelity.{json,md,png}

On lenet5_fashion and lenet300_100_fashion (cortex-a76), at eight file budgets each, from mild
down to near the smallest feasible size: the exact optimum of the plain sum and of the
sensitivity-weighted sum, the greedy plan, and two random plans (a random option per layer,
repaired into the budget as the study repairs): 40 plans per model, from good to wrecked. Every
plan is fine-tuned with the default retraining recipe, with two seeds, and tested on the 10,000
Fashion-MNIST test images; its accuracy after retraining is the mean of the two. The good plans
(within 2 points of the uncompressed model after retraining) are ranked separately too.
Proxies compared:

- sum:        the sum over layers of the relative output errors e_l
- sum of squares: sum e_l^2
- weighted:   sum s_l e_l^2, s_l the layer's measured sensitivity (hwsearch's default)
- end-to-end: KL divergence of the whole compressed model's outputs from the original's on the
              256 calibration images, before fine-tuning

Reported: Spearman rank correlation of each proxy with test error after retraining (and before),
per model and pooled over both.
"""
from __future__ import annotations

import copy
import json
import random
from dataclasses import replace
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.progress import Progress  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from tables import OUT, tables  # noqa: E402
from hwsearch.budget import Budgets  # noqa: E402
from hwsearch.compression import apply_  # noqa: E402
from hwsearch.config import RunConfig  # noqa: E402
from hwsearch.study import Repair, SearchConfig, exact_optimum, greedy_plan, search_space  # noqa: E402
from hwsearch.proxy import PlanScorer  # noqa: E402
from hwsearch.runs import retrain  # noqa: E402
from hwsearch.workloads import TrainConfig  # noqa: E402

BUDGETS = {"lenet5_fashion": (200_000, 100_000, 60_000, 40_000, 30_000, 24_000, 19_000, 16_000),
           "lenet300_100_fashion": (130_000, 70_000, 40_000, 25_000, 17_000, 13_000, 11_000, 9_500)}
GOOD = 0.02             # a plan within 2 points of the uncompressed model after retraining counts as good
N_RANDOM = 2
SEEDS = (0, 1)          # retraining seeds per plan
PROXIES = ("sum", "sum of squares", "weighted", "end-to-end")


def candidates(t, rng: random.Random) -> list[tuple[str, int, dict[str, int]]]:
    plain, weighted = t.proxy.combined("sum"), t.proxy
    out = []
    for budget in BUDGETS[t.work.model_spec["name"]]:
        budgets = Budgets(size_bytes=budget)
        space = search_space(plain, t.costs, SearchConfig(budgets))
        for kind, proxy in (("exact optimum, sum", plain), ("exact optimum, weighted", weighted)):
            found = exact_optimum(proxy.scores, t.costs, budgets, search_space(proxy, t.costs, SearchConfig(budgets)))
            out.append((kind, budget, found.choice))
        greedy = greedy_plan(space, plain, t.costs, budgets)
        if greedy is not None:
            out.append(("greedy, sum", budget, greedy))
        repair = Repair(plain, t.costs, budgets, space)
        for _ in range(N_RANDOM):
            choice = {name: rng.choice(space[name]) for name in t.names}
            out.append(("random", budget, repair(choice, t.costs.totals(choice))))
    return out


@torch.no_grad()
def test_figures(model, split) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy over the whole split."""
    model.eval()
    correct = loss = total = 0
    for x, y in split.batches(512):
        logits = model(x)
        correct += int((logits.argmax(1) == y).sum())
        loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        total += len(y)
    return correct / total, loss / total


def measure(model_name: str, recipe: TrainConfig, progress: Progress) -> list[dict]:
    t = tables(model_name, progress=progress)
    scorer = PlanScorer(t.work.model, t.calibration)
    plans = candidates(t, random.Random(0))
    task = progress.add_task(f"{model_name}: retraining {len(plans)} plans", total=len(plans))
    rows = []
    for kind, budget, choice in plans:
        plan = t.plan(choice)
        errors = np.array([t.proxy.errors[n][i] for n, i in choice.items()])
        sensitivity = np.array([t.proxy.sensitivity[n] for n in choice])
        compressed = apply_(copy.deepcopy(t.work.model), plan, calibration=t.calibration)
        before, loss_before = test_figures(compressed, t.work.data.test)
        # the mean over retraining seeds
        figures = [test_figures(retrain(t.work.model, plan, t.work.data, replace(recipe, seed=seed),
                                        calibration=t.calibration).model, t.work.data.test) for seed in SEEDS]
        after, loss_after = float(np.mean([a for a, _ in figures])), float(np.mean([l for _, l in figures]))
        rows.append({"model": model_name, "kind": kind, "budget_bytes": budget, "baseline": t.work.test_accuracy,
                     "size_bytes": int(t.costs.totals(choice)["size_bytes"]),
                     "sum": float(errors.sum()), "sum of squares": float(np.square(errors).sum()),
                     "weighted": float((sensitivity * np.square(errors)).sum()), "end-to-end": scorer(plan),
                     "test_accuracy_before": before, "test_loss_before": loss_before,
                     "test_accuracy": after, "test_loss": loss_after,
                     "plan": {n: o.label for n, o in plan.items()}})
        progress.advance(task)
    return rows


def correlations(rows: list[dict]) -> dict:
    good = [r for r in rows if r["test_accuracy"] >= r["baseline"] - GOOD]
    return {proxy: {"after_retraining": spearmanr([r[proxy] for r in rows], [1 - r["test_accuracy"] for r in rows]).statistic,
                    "before_retraining": spearmanr([r[proxy] for r in rows],
                                                   [1 - r["test_accuracy_before"] for r in rows]).statistic,
                    "good_plans": spearmanr([r[proxy] for r in good], [1 - r["test_accuracy"] for r in good]).statistic
                    if len(good) > 2 else None, "good_plans_count": len(good)}
            for proxy in PROXIES}


def main() -> None:
    config = RunConfig()
    recipe = TrainConfig(epochs=config.finetune_epochs, max_lr=config.finetune_lr, seed=0, max_shift=2,
                         distill=config.finetune_distill, schedule=config.finetune_schedule)
    with Progress() as progress:
        rows = [row for name in BUDGETS for row in measure(name, recipe, progress)]
    spearman = {name: correlations([r for r in rows if r["model"] == name]) for name in BUDGETS}
    spearman["both"] = correlations(rows)
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "target": "cortex-a76",
           "calibration_images": 256, "retraining": {**{k: getattr(recipe, k) for k in ("epochs", "max_lr", "distill",
                                                                                     "schedule")}, "seeds": SEEDS},
           "spearman_with_test_error": spearman, "plans": rows}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "proxy_fidelity.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = ["# Proxy fidelity: Spearman correlation with test error", "",
             f"{len(rows)} plans ({', '.join(str(sum(r['model'] == n for r in rows)) + ' on ' + n for n in BUDGETS)}): "
             "exact optima, greedy and random plans at eight budgets each, each fine-tuned with the default recipe "
             f"({recipe.epochs} epochs) with seeds {', '.join(map(str, SEEDS))}; test accuracy after retraining is "
             "their mean, on the 10,000 Fashion-MNIST test images. Good plans: within 2 points of the uncompressed "
             "model after retraining (their number in brackets). Command: `python benchmarks/proxy_fidelity.py`.", "",
             "| proxy | " + " | ".join(f"{n}, after retraining | {n}, before | {n}, good plans" for n in spearman) + " |",
             "|---|" + "---|---|---|" * len(spearman)]
    for proxy in PROXIES:
        def good(n):
            value = spearman[n][proxy]["good_plans"]
            return "-" if value is None else f"{value:.3f} ({spearman[n][proxy]['good_plans_count']})"
        lines.append(f"| {proxy} | " + " | ".join(f"{spearman[n][proxy]['after_retraining']:.3f} | "
                                                   f"{spearman[n][proxy]['before_retraining']:.3f} | {good(n)}"
                                                   for n in spearman) + " |")
    lines += ["", "| model | plan | budget | size | sum | weighted | end-to-end | test acc. before | after |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['kind']} | {r['budget_bytes']:,} | {r['size_bytes']:,} | {r['sum']:.3f} | "
                     f"{r['weighted']:.4f} | {r['end-to-end']:.3f} | {r['test_accuracy_before']:.1%} | "
                     f"{r['test_accuracy']:.1%} |")
    (OUT / "proxy_fidelity.md").write_text("\n".join(lines) + "\n")
    plot(rows, spearman)
    print("\n".join(lines[:8 + len(PROXIES)]))


def plot(rows: list[dict], spearman: dict) -> None:
    shown = ("sum", "weighted", "end-to-end")
    fig, axes = plt.subplots(len(BUDGETS), len(shown), figsize=(11, 6.5), dpi=100, squeeze=False)
    colours = {"exact optimum, sum": "tab:blue", "exact optimum, weighted": "tab:orange", "greedy, sum": "tab:green",
               "random": "0.5"}
    for row_axes, name in zip(axes, BUDGETS):
        mine = [r for r in rows if r["model"] == name]
        for ax, proxy in zip(row_axes, shown):
            for kind, colour in colours.items():
                pts = [r for r in mine if r["kind"] == kind]
                ax.scatter([r[proxy] for r in pts], [r["test_accuracy"] for r in pts], s=18, c=colour, label=kind)
            ax.set_xscale("log")
            ax.set_title(f"{name}: {proxy} (rho {spearman[name][proxy]['after_retraining']:.2f})", fontsize=9)
            ax.set_xlabel(proxy, fontsize=8)
            ax.set_ylabel("test accuracy after retraining", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "proxy_fidelity.png")


if __name__ == "__main__":
    main()

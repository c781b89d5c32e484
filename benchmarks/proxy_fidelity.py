"""Does the proxy rank plans as accuracy does? Plans scored by proxy and by real test metrics.

    python benchmarks/proxy_fidelity.py     # writes results/benchmarks/proxy_fidelity.{json,png}

Plans: the study's warm start at budgets from 20 MB down to 0.6 MB, plus random plans drawn
from each layer's non-dominated options. Each is applied to the cached ResNet-18 without
fine-tuning, and evaluated on the test split (accuracy and cross-entropy). Reported: Spearman
rank correlation of the proxy with test loss and with test error.
"""
from __future__ import annotations

import copy
import json
import random
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from rich.progress import Progress  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from cost_models import load_target, make_cost_model  # noqa: E402
from hwsearch import artifact  # noqa: E402
from hwsearch.compress import apply_  # noqa: E402
from hwsearch.cost_table import build_cost_table  # noqa: E402
from hwsearch.layer_graph import LayerGraph  # noqa: E402
from hwsearch.options import layer_options  # noqa: E402
from hwsearch.proxy import build_proxy_table  # noqa: E402
from hwsearch.study import greedy_plan, non_dominated  # noqa: E402
from hwsearch.workload import load_workload  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUDGETS_MB = (20, 10, 5, 3, 2, 1.5, 1, 0.8, 0.6)
N_RANDOM = 12


@torch.no_grad()
def evaluate(model, split) -> tuple[float, float]:
    logits = model.eval()(split.x)
    return (logits.argmax(1) == split.y).float().mean().item(), F.cross_entropy(logits, split.y).item()


def main() -> None:
    with Progress() as progress:
        work = load_workload("resnet18_digits", progress=progress)
        layers = LayerGraph.trace(work.model, work.data.train.x[:1]).compressible()
        names = [l.name for l in layers]
        options = {l.name: layer_options(l) for l in layers}
        fixed = artifact.fixed_bytes(work.model, model_spec=work.model_spec, layer_names=names)
        costs = build_cost_table(make_cost_model("analytical", load_target("cortex-a76")), layers, options, fixed)
        proxy = build_proxy_table(work.model, layers, options, work.data.train.x[:256], progress)
        space = {n: non_dominated(proxy.errors[n], costs.column(n, "weight_bytes")) for n in names}
        rng = random.Random(0)
        plans = [("warm start", mb, greedy_plan(space, proxy, costs, int(mb * 1e6))) for mb in BUDGETS_MB]
        plans += [("random", None, {n: rng.choice(space[n]) for n in names}) for _ in range(N_RANDOM)]
        rows = []
        task = progress.add_task("evaluating plans", total=len(plans))
        for kind, mb, choice in plans:
            model = apply_(copy.deepcopy(work.model), {n: options[n][i] for n, i in choice.items()})
            acc, loss = evaluate(model, work.data.test)
            rows.append({"kind": kind, "budget_mb": mb, "size_bytes": int(costs.totals(choice)["size_bytes"]),
                         "proxy": float(sum(proxy.errors[n][i] for n, i in choice.items())),
                         "test_accuracy": acc, "test_loss": loss})
            progress.advance(task)
    proxies = [r["proxy"] for r in rows]
    out = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": "resnet18_digits", "target": "cortex-a76", "calibration_images": 256, "fine_tuned": False,
        "spearman_proxy_vs_test_loss": spearmanr(proxies, [r["test_loss"] for r in rows]).statistic,
        "spearman_proxy_vs_test_error": spearmanr(proxies, [1 - r["test_accuracy"] for r in rows]).statistic,
        "baseline_test_accuracy": work.test_accuracy,
        "plans": rows,
    }
    folder = ROOT / "results" / "benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "proxy_fidelity.json").write_text(json.dumps(out, indent=1) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for kind, colour in (("warm start", "tab:blue"), ("random", "tab:gray")):
        pts = [r for r in rows if r["kind"] == kind]
        ax.scatter([r["proxy"] for r in pts], [r["test_accuracy"] for r in pts], c=colour, label=kind)
    for r in rows:
        if r["budget_mb"]:
            ax.annotate(f"{r['budget_mb']:g} MB", (r["proxy"], r["test_accuracy"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 3))
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("proxy (summed relative output error)")
    ax.set_ylabel("test accuracy, no fine-tuning")
    ax.set_title(f"Proxy vs accuracy (Spearman vs loss {out['spearman_proxy_vs_test_loss']:.2f})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "proxy_fidelity.png")
    print(json.dumps({k: v for k, v in out.items() if k != "plans"}, indent=1))
    for r in rows:
        print(f"{r['kind']:>10} {r['budget_mb'] or '':>5} {r['size_bytes']:>11,} proxy {r['proxy']:8.3f} "
              f"acc {r['test_accuracy']:.4f} loss {r['test_loss']:.4f}")


if __name__ == "__main__":
    main()

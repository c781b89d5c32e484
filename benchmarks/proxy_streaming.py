"""Does the streamed proxy table rank plans as the exact one does? Checked on the proxy-fidelity benchmark's plans.

    python benchmarks/proxy_streaming.py     # after proxy_fidelity.py; writes results/benchmarks/proxy_streaming.{md,json}

`benchmarks/proxy_fidelity.py` retrained 40 plans per model and recorded each plan's test
accuracy after retraining. Here each model's proxy table is built twice, exactly and streamed
(errors at `POSITIONS` sampled output positions, fits on the first `FIT_IMAGES` images, Fisher
sensitivities: what a model too big for the exact path gets), every recorded plan is scored
with each (the weighted score, hwsearch's default), and each score's Spearman correlation with
the plans' test error after retraining is reported, beside the per-layer agreement of the two
tables. The Fashion-MNIST residual and mobile nets, which have no retrained plans there, get
the per-layer agreement only.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import numpy as np
from scipy.stats import spearmanr

from tables import CALIBRATION, OUT  # noqa: F401  (puts the repository on the path)
from hwsearch.compression import layer_options
from hwsearch.graph import LayerGraph
from hwsearch.proxy import build_proxy_table, streaming
from hwsearch.workloads import load_workload

MODELS = ("lenet5_fashion", "lenet300_100_fashion", "resnet_fashion", "mobilenet_fashion")


def both_tables(name: str):
    work = load_workload(name)
    layers = LayerGraph.trace(work.model, work.example).compressible()
    options = {layer.name: layer_options(layer) for layer in layers}
    calibration = work.data.train.take(CALIBRATION)
    start = time.perf_counter()
    exact = build_proxy_table(work.model, layers, options, calibration, streaming=False)
    middle = time.perf_counter()
    streamed = build_proxy_table(work.model, layers, options, calibration, streaming=True)
    return options, exact, streamed, middle - start, time.perf_counter() - middle


def score(table, options, plan: dict[str, str]) -> float:
    labels = {name: [o.label for o in options[name]] for name in options}
    weighted = table.scores
    return float(sum(weighted[name][labels[name].index(label)] for name, label in plan.items()))


def main() -> None:
    fidelity = json.loads((OUT / "proxy_fidelity.json").read_text())
    rows = []
    for name in MODELS:
        options, exact, streamed, t_exact, t_streamed = both_tables(name)
        per_layer = [spearmanr(exact.errors[n], streamed.errors[n])[0] for n in exact.errors]
        sens = spearmanr([exact.sensitivity[n] for n in exact.errors], [streamed.sensitivity[n] for n in exact.errors])[0]
        row = {"model": name, "exact_s": round(t_exact, 1), "streamed_s": round(t_streamed, 1),
               "layer_spearman_min": float(np.min(per_layer)), "layer_spearman_median": float(np.median(per_layer)),
               "sensitivity_spearman": float(sens)}
        plans = [p for p in fidelity["plans"] if p["model"] == name]
        if plans:
            error = [1 - p["test_accuracy"] for p in plans]
            row["plans"] = len(plans)
            row["exact_vs_test_error"] = float(spearmanr([score(exact, options, p["plan"]) for p in plans], error)[0])
            row["streamed_vs_test_error"] = float(spearmanr([score(streamed, options, p["plan"]) for p in plans],
                                                            error)[0])
            row["recorded_vs_test_error"] = fidelity["spearman_with_test_error"][name]["weighted"]["after_retraining"]
        rows.append(row)
        print(row, flush=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (OUT / "proxy_streaming.json").write_text(json.dumps({"created": stamp, "calibration": CALIBRATION,
                                                          "positions": streaming.POSITIONS,
                                                          "fit_images": streaming.FIT_IMAGES, "rows": rows}, indent=1))
    lines = ["# The streamed proxy table against the exact one\n",
             f"{CALIBRATION} calibration images; streamed: errors at {streaming.POSITIONS} sampled output positions per "
             f"layer, fits on the first {streaming.FIT_IMAGES} images, Fisher sensitivities. Spearman correlations; "
             f"plans and their test accuracy after retraining from proxy_fidelity.json. Command: "
             f"`python benchmarks/proxy_streaming.py`. Written {stamp}.\n",
             "| model | options per layer, exact vs streamed (min / median) | layer sensitivities | plans | "
             "weighted score vs test error: exact | streamed | table time, exact / streamed |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['layer_spearman_min']:.4f} / {r['layer_spearman_median']:.4f} | "
                     f"{r['sensitivity_spearman']:.3f} | {r.get('plans', '')} | "
                     + (f"{r['exact_vs_test_error']:.3f} | {r['streamed_vs_test_error']:.3f} | " if "plans" in r
                        else " |  | ")
                     + f"{r['exact_s']:.1f} s / {r['streamed_s']:.1f} s |")
    (OUT / "proxy_streaming.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / 'proxy_streaming.md'}")


if __name__ == "__main__":
    main()

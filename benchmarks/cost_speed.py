"""How fast the cost model prices (layer, option) pairs, beside ZigZag's time per layer.

    python benchmarks/cost_speed.py          # writes results/benchmarks/cost_speed.{json,md}

Every option of every compressible layer (the search's grid), priced in one vectorised call, cold and
warm as the cost table does, on the default model (ResNet-18 for 8x8 digits) and on ResNet-50 at
224 x 224, for every built-in target. The goal: at most 20 microseconds per (layer, option), amortised.
ZigZag's figures come from results/benchmarks/zigzag_fidelity.json (run that first for them).
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cost_models import available_targets, build_cost_table, load_target, make_cost_model  # noqa: E402
from hwsearch.export import artifact  # noqa: E402
from hwsearch.graph import LayerGraph  # noqa: E402
from hwsearch.workloads import build_model  # noqa: E402
from hwsearch.compression import layer_options  # noqa: E402

OUT = ROOT / "results" / "benchmarks"
MODELS = (("resnet18_digits", (1, 1, 8, 8)), ("resnet50", (1, 3, 224, 224)))


def best_of(call, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rows = []
    for name, shape in MODELS:
        model = build_model(name).eval()
        graph = LayerGraph.trace(model, torch.zeros(shape))
        layers = graph.compressible()
        options = {l.name: layer_options(l) for l in layers}
        pairs = [(l, o) for l in layers for o in options[l.name]]
        fixed = artifact.fixed_bytes(model, model_spec={"name": name, "kwargs": {}}, layer_names=list(options))
        for target_name in available_targets():
            cost_model = make_cost_model("analytical", load_target(target_name))
            price = best_of(lambda: cost_model.price(pairs))
            table = best_of(lambda: build_cost_table(cost_model, layers, options, fixed, graph))
            rows.append({"model": name, "target": target_name, "pairs": len(pairs),
                         "price_us_per_pair": price / len(pairs) * 1e6, "table_us_per_pair": table / len(pairs) * 1e6,
                         "table_s": table})
            print(f"{name:16s} {target_name:17s} {len(pairs):5d} pairs: price {rows[-1]['price_us_per_pair']:5.1f} us, "
                  f"whole table (cold, warm, fixed ops, conversions) {rows[-1]['table_us_per_pair']:5.1f} us per pair")
    zigzag = {}
    fidelity = OUT / "zigzag_fidelity.json"
    if fidelity.is_file():
        for target, r in json.loads(fidelity.read_text())["targets"].items():
            zigzag[target] = r["seconds_per_pair"]
    lines = ["# Cost model speed", "", "Microseconds per (layer, option), best of 5, one vectorised call for all pairs.", "",
             "| model | target | pairs | price | whole table | ZigZag, same target (cold cache) |", "|---|---|---|---|---|---|"]
    for r in rows:
        z = zigzag.get(r["target"], {})
        cold = z.get("zigzag_cold_median") if isinstance(z, dict) else None
        lines.append(f"| {r['model']} | {r['target']} | {r['pairs']} | {r['price_us_per_pair']:.1f} us | "
                     f"{r['table_us_per_pair']:.1f} us | {f'{cold:.2f} s' if cold else '-'} |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cost_speed.json").write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                                     "rows": rows, "zigzag_seconds_per_pair": zigzag}, indent=1) + "\n")
    (OUT / "cost_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

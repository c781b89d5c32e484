"""hwsearch from Python, as in a notebook: a model and data held as objects.

    python examples/api.py          (from anywhere; about a minute on two cores)

The README's "Python API" section shows this file and what it prints.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "user_model"))   # the example's model and data

import hwsearch
from data import evaluate, load
from nets import SmallCNN, build

model = build()                                    # a small CNN, trained on digits on first use
train, val, test = load()                          # three DataLoaders
result = hwsearch.search(model, (train, val, test), eval=evaluate, target="cortex-a76", budget="50KB",
                         trials=100, progress=False)

final = result.summary["final"]
print(f"{final['size_bytes']:,} bytes, macro F1 {result.summary['baseline']['test_accuracy']:.2%} -> "
      f"{final['test_accuracy']:.2%}, {final['latency_s'] * 1e6:.1f} us predicted on the A76")
for name, option in result.plan.items():
    print(f"  {name:14s} {option.label}")
print(f"front: {len(result.front)} plans from {result.front[0]['size_bytes']:,} to {result.front[-1]['size_bytes']:,} B")

folder = result.save("results/api-example")
compressed, meta = hwsearch.load(folder / "model.hws", model=SmallCNN())      # into the architecture
print(f"saved {folder}; reloaded F1 {evaluate(compressed, test):.2%}")

costs = hwsearch.cost(model, (1, 8, 8), "eyeriss-like")
print(f"uncompressed on eyeriss-like: {costs['total']['latency_s'] * 1e3:.3f} ms, "
      f"{costs['total']['energy_j'] * 1e6:.1f} uJ, {len(costs['layers'])} ops")
print(f"{len(hwsearch.targets())} targets: {', '.join(hwsearch.targets())}")

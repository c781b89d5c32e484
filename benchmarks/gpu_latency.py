"""Measured GPU latency at batch 1 and 32 against a GPU target's predictions.

    python benchmarks/gpu_latency.py                      # on a machine with an NVIDIA GPU: target a100
    python benchmarks/gpu_latency.py --target h100 ...    # a target file describing the GPU at hand
    python benchmarks/gpu_latency.py --device cpu --target host-torch --models resnet18_digits --batches 1

Models run in torch eager (cuDNN autotuned, TF32 allowed for convolutions and matmuls as the a100
target assumes), uncompressed, in fp16, and as low-rank variants (random plans from the search's option
grid, run as the smaller layers a deployment runs). Each latency is the median of CUDA-synchronised
calls after warm-up. The target was fitted on TensorRT figures: torch eager adds per-kernel launch
costs from Python, which shows at batch 1. Writes results/benchmarks/gpu_latency.{json,md} (or --output).
On a machine without a GPU, `--device cpu` runs the same script on the CPU, which is what the tests do.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cost_models import load_target, make_cost_model, plan_costs  # noqa: E402
from cost_models.validate import Agreement  # noqa: E402
from hwsearch.compression import Option, apply_, layer_options  # noqa: E402
from hwsearch.graph import LayerGraph  # noqa: E402
from hwsearch.workloads import build_model  # noqa: E402
from hwsearch.export import plain_  # noqa: E402

SHAPES = {"resnet18_digits": (1, 8, 8), "lenet5_digits": (1, 8, 8)}


def measure(model, x, device: str, *, warmup: int = 10, repeats: int = 30) -> float:
    """Median seconds per call, synchronised with the device."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def variants(layers, count: int, seed: int):
    """The uncompressed plan, fp16, and `count` low-rank plans."""
    rng = random.Random(seed)
    yield "fp32", {}, False
    yield "fp16", {l.name: Option(bits=16) for l in layers}, True
    for i in range(count):
        plan = {}
        for layer in layers:
            ranks = sorted({o.rank for o in layer_options(layer) if o.rank is not None})
            plan[layer.name] = Option(rank=rng.choice(ranks)) if ranks and rng.random() < 0.6 else Option()
        yield f"low-rank {i + 1}", plan, False


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--target", default="a100", help="the target whose predictions are compared")
    p.add_argument("--models", default="resnet50,mobilenet_v2,resnet18", help="comma-separated model names")
    p.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    p.add_argument("--variants", type=int, default=4, help="low-rank variants per model")
    p.add_argument("--output", default=str(ROOT / "results" / "benchmarks"), help="folder for gpu_latency.*")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run on a machine with an NVIDIA GPU, or pass --device cpu")
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = True
    target = load_target(args.target)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    rows = []
    for name in args.models.split(","):
        shape = SHAPES.get(name, (3, 224, 224))
        torch.manual_seed(0)
        base = build_model(name).eval()
        graph = LayerGraph.trace(base, torch.zeros(1, *shape))
        for label, plan, half in variants(graph.compressible(), args.variants, seed=0):
            model = plain_(apply_(copy.deepcopy(base), {n: o for n, o in plan.items() if o.rank is not None}))
            model = model.to(args.device)
            if half:
                model = model.half()
            for batch in (int(b) for b in args.batches.split(",")):
                x = torch.randn(batch, *shape, device=args.device, dtype=torch.half if half else torch.float)
                measured = measure(model, x, args.device)
                predicted = plan_costs(make_cost_model("analytical", target, batch=batch), graph, plan)["latency_s"]
                rows.append({"model": name, "variant": label, "batch": batch, "measured_s": measured,
                             "predicted_s": predicted, "error": predicted / measured - 1})
                print(f"{name:16s} {label:11s} batch {batch:3d}: measured {measured * 1e3:8.3f} ms, predicted "
                      f"{predicted * 1e3:8.3f} ms ({rows[-1]['error']:+.0%})")
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": device_name,
              "target": target.name, "rows": rows}
    lines = [f"# Measured on {device_name} against target {target.name}", "",
             "| batch | variants | Spearman | median error |", "|---|---|---|---|"]
    for batch in sorted({r["batch"] for r in rows}):
        chosen = [r for r in rows if r["batch"] == batch]
        a = Agreement.of([r["predicted_s"] for r in chosen], [r["measured_s"] for r in chosen])
        report[f"batch_{batch}"] = a.__dict__
        lines.append(f"| {batch} | {a.n} | {a.spearman:.3f} | {a.median_abs_error:.1%} |")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_latency.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "gpu_latency.md").write_text("\n".join(lines) + "\n")
    return report


if __name__ == "__main__":
    main()

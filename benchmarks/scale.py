"""How the proxy table scales with the model: time and peak memory for ImageNet-size networks.

    python benchmarks/scale.py                       # writes results/benchmarks/scale.{md,json,png}
    python benchmarks/scale.py --device cuda         # the same on a GPU (names the card)
    python benchmarks/scale.py --models resnet50 --calibration 64 --streaming off   # the exact path, for comparison
    python benchmarks/scale.py --models resnet18 --workers 0,1,2,4   # on local Dask clusters -> scale_workers.*

Each model (the project's own definitions of the torchvision architectures, randomly
initialised: nothing is downloaded) is traced at 224x224 and given the default option grid;
its proxy table is built from `--calibration` seeded synthetic images, in a fresh process per
model so that its peak resident memory (`ru_maxrss`) is its own. The table's time does not
depend on the weights being trained; its values do, which `tests/test_proxy_streaming.py` and
`benchmarks/proxy_fidelity.py` cover on trained models.

`--workers 0,1,2,4` builds each model's table in this process (0) and on local Dask clusters of
1, 2 and 4 worker processes (`hwsearch --workers N`), each worker with an equal share of the
cores; the time includes starting the cluster and is written to `scale_workers.{md,json,png}`.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "benchmarks"
MODELS = ("resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "vit_tiny")
GOALS = {"resnet50": (600, 4 * 2 ** 30), "mobilenet_v2": (180, None)}     # seconds, peak bytes (256 images, 2 cores)


def measure(model_name: str, calibration: int, device: str, streaming: str, workers: int = 0) -> dict:
    """One model's proxy table, in this process or on a local cluster of `workers` processes."""
    import torch

    from hwsearch.cluster import open_pool
    from hwsearch.compression import layer_options
    from hwsearch.config import resolve_device
    from hwsearch.graph import LayerGraph
    from hwsearch.proxy import build_proxy_table
    from hwsearch.proxy.table import streams
    from hwsearch.workloads.models import build_model

    device = resolve_device(device)
    torch.manual_seed(0)
    model = build_model(model_name).eval()
    layers = LayerGraph.trace(model, torch.zeros(1, 3, 224, 224)).compressible()
    options = {layer.name: layer_options(layer) for layer in layers}
    images = torch.randn(calibration, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    streamed = streams(model, layers, images) if streaming == "auto" else streaming == "on"
    start = time.perf_counter()
    with open_pool(workers) as pool:
        table = build_proxy_table(model, layers, options, images, device=device, streaming=streamed, pool=pool)
    seconds = time.perf_counter() - start
    return {"model": model_name, "parameters": sum(p.numel() for p in model.parameters()),
            "layers": len(layers), "pairs": sum(len(o) for o in options.values()), "calibration": calibration,
            "streamed": streamed, "device": device if device == "cpu" else torch.cuda.get_device_name(device),
            "threads": torch.get_num_threads(), "workers": workers, "proxy_s": round(seconds, 1),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "finite": bool(all(abs(v) < float("inf") for row in table.errors.values() for v in row))}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--calibration", type=int, default=256)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N], as hwsearch --device")
    p.add_argument("--streaming", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--workers", default=None,
                   help="comma-separated worker counts (0: in process), e.g. 0,1,2,4: time against workers")
    p.add_argument("--one", help=argparse.SUPPRESS)            # the child process: measure one model, print JSON
    p.add_argument("--one-workers", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--name", default="scale", help="file names of the results (.md, .json, .png)")
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.calibration, args.device, args.streaming, args.one_workers)))
        return
    from hwsearch.config import resolve_device
    from hwsearch.errors import HwsearchError
    try:
        resolve_device(args.device)           # `--device cuda` on a machine without one: one line, before any work
    except HwsearchError as error:
        sys.exit(f"scale.py: {error}")
    rows = []
    counts = [int(n) for n in args.workers.split(",")] if args.workers else [0]
    for name, workers in ((name, n) for name in args.models.split(",") for n in counts):
        print(f"{name}: proxy table on {args.calibration} images"
              + (f", {workers} worker process(es)" if args.workers else "") + " ...", flush=True)
        done = subprocess.run([sys.executable, __file__, "--one", name, "--calibration", str(args.calibration),
                               "--device", args.device, "--streaming", args.streaming, "--one-workers", str(workers)],
                              capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            rows.append({"model": name, "error": done.stderr.strip().splitlines()[-1:]})
            print(f"  failed: {rows[-1]['error']}")
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"  {r['proxy_s']:.0f} s, peak {r['peak_rss_bytes'] / 2 ** 30:.2f} GiB, streamed {r['streamed']}")
    if args.workers:
        write_workers(rows, args)
    else:
        write(rows, args)


def write(rows: list[dict], args) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (OUT / f"{args.name}.json").write_text(json.dumps({"created": stamp, "calibration": args.calibration,
                                                         "rows": rows}, indent=1))
    lines = [f"# The proxy table at ImageNet size\n",
             f"Default option grid, {args.calibration} synthetic 224x224 calibration images, one process per model; "
             f"peak resident memory of that process. Command: `python benchmarks/scale.py "
             f"--calibration {args.calibration} --device {args.device}`. Written {stamp}.\n",
             "| model | parameters | layers | (layer, option) pairs | path | device, threads | proxy table | peak memory | goal |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | | | | | | failed: {' '.join(r['error'])} | | |")
            continue
        goal = GOALS.get(r["model"]) if args.calibration == 256 else None
        verdict = ""
        if goal:
            met = r["proxy_s"] <= goal[0] and (goal[1] is None or r["peak_rss_bytes"] <= goal[1])
            verdict = (f"<= {goal[0] / 60:.0f} min" + (f", <= {goal[1] / 2 ** 30:.0f} GiB" if goal[1] else "")
                       + (": met" if met else ": missed"))
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['layers']} | {r['pairs']:,} | "
                     f"{'streamed' if r['streamed'] else 'exact'} | {r['device']}, {r['threads']} | "
                     f"{r['proxy_s'] / 60:.1f} min | {r['peak_rss_bytes'] / 2 ** 30:.2f} GiB | {verdict} |")
    (OUT / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    plot(rows, OUT / f"{args.name}.png")
    print(f"wrote {OUT / args.name}.md, .json, .png")


def write_workers(rows: list[dict], args) -> None:
    """Time against worker processes: scale_workers.{md,json,png} (or --name with _workers)."""
    import os
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"{args.name}_workers"
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (OUT / f"{name}.json").write_text(json.dumps({"created": stamp, "calibration": args.calibration,
                                                  "cores": os.cpu_count(), "rows": rows}, indent=1))
    lines = ["# The proxy table on local Dask clusters\n",
             f"Default option grid, {args.calibration} synthetic 224x224 calibration images, {os.cpu_count()} cores; "
             "0 workers: in one process with every core; N workers: a local cluster of N processes, each with "
             "cores / N threads (at least one), this process capturing the layers' inputs and the workers "
             "computing the rows. The time includes starting and stopping the cluster; peak memory is this "
             f"process's. Command: `python benchmarks/scale.py --models {args.models} --workers {args.workers} "
             f"--calibration {args.calibration}`. Written {stamp}.\n",
             "| model | workers | path | proxy table | speed-up | peak memory (driver) |", "|---|---|---|---|---|---|"]
    base = {r["model"]: r["proxy_s"] for r in rows if "error" not in r and r["workers"] == 0}
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | | failed: {' '.join(r['error'])} | | | |")
            continue
        speed = f"{base[r['model']] / r['proxy_s']:.2f}x" if r["model"] in base else ""
        lines.append(f"| {r['model']} | {r['workers'] or 'in process'} | {'streamed' if r['streamed'] else 'exact'} | "
                     f"{r['proxy_s']:.0f} s | {speed} | {r['peak_rss_bytes'] / 2 ** 30:.2f} GiB |")
    (OUT / f"{name}.md").write_text("\n".join(lines) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axis = plt.subplots(figsize=(5, 4))
    for model in dict.fromkeys(r["model"] for r in rows if "error" not in r):
        mine = [r for r in rows if r.get("model") == model and "error" not in r]
        axis.plot([r["workers"] for r in mine], [r["proxy_s"] for r in mine], marker="o", label=model)
    axis.set(xlabel="worker processes (0: in process)", ylabel="proxy table (s)",
             title=f"proxy table against workers ({os.cpu_count()} cores)")
    axis.grid(alpha=0.3)
    axis.legend()
    fig.tight_layout()
    fig.savefig(OUT / f"{name}.png", dpi=110)
    plt.close(fig)
    print(f"wrote {OUT / name}.md, .json, .png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    good = [r for r in rows if "error" not in r]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for r in good:
        x = r["parameters"] / 1e6
        a.scatter(x, r["proxy_s"] / 60)
        b.scatter(x, r["peak_rss_bytes"] / 2 ** 30)
        for axis, y in ((a, r["proxy_s"] / 60), (b, r["peak_rss_bytes"] / 2 ** 30)):
            axis.annotate(r["model"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    a.set(xlabel="parameters (M)", ylabel="proxy table (min)", title="time")
    b.set(xlabel="parameters (M)", ylabel="peak resident memory (GiB)", title="memory")
    for axis in (a, b):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()

"""How the proxy table scales with the model: time and peak memory for ImageNet-size networks.

    python benchmarks/scale.py                       # writes results/benchmarks/scale.{md,json,png}
    python benchmarks/scale.py --device cuda         # the same on a GPU (names the card)
    python benchmarks/scale.py --models resnet50 --calibration 64 --streaming off   # the exact path, for comparison

Each model (the project's own definitions of the torchvision architectures, randomly
initialised: nothing is downloaded) is traced at 224x224 and given the default option grid;
its proxy table is built from `--calibration` seeded synthetic images, in a fresh process per
model so that its peak resident memory (`ru_maxrss`) is its own. The table's time does not
depend on the weights being trained; its values do, which `tests/test_proxy_streaming.py` and
`benchmarks/proxy_fidelity.py` cover on trained models.
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
MODELS = ("resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0")
GOALS = {"resnet50": (600, 4 * 2 ** 30), "mobilenet_v2": (180, None)}     # seconds, peak bytes (256 images, 2 cores)


def measure(model_name: str, calibration: int, device: str, streaming: str) -> dict:
    """One model's proxy table, in this process."""
    import torch

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
    table = build_proxy_table(model, layers, options, images, device=device, streaming=streamed)
    seconds = time.perf_counter() - start
    return {"model": model_name, "parameters": sum(p.numel() for p in model.parameters()),
            "layers": len(layers), "pairs": sum(len(o) for o in options.values()), "calibration": calibration,
            "streamed": streamed, "device": device if device == "cpu" else torch.cuda.get_device_name(device),
            "threads": torch.get_num_threads(), "proxy_s": round(seconds, 1),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "finite": bool(all(abs(v) < float("inf") for row in table.errors.values() for v in row))}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--calibration", type=int, default=256)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N], as hwsearch --device")
    p.add_argument("--streaming", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--one", help=argparse.SUPPRESS)            # the child process: measure one model, print JSON
    p.add_argument("--name", default="scale", help="file names of the results (.md, .json, .png)")
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.calibration, args.device, args.streaming)))
        return
    from hwsearch.config import resolve_device
    from hwsearch.errors import HwsearchError
    try:
        resolve_device(args.device)           # `--device cuda` on a machine without one: one line, before any work
    except HwsearchError as error:
        sys.exit(f"scale.py: {error}")
    rows = []
    for name in args.models.split(","):
        print(f"{name}: proxy table on {args.calibration} images ...", flush=True)
        done = subprocess.run([sys.executable, __file__, "--one", name, "--calibration", str(args.calibration),
                               "--device", args.device, "--streaming", args.streaming],
                              capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            rows.append({"model": name, "error": done.stderr.strip().splitlines()[-1:]})
            print(f"  failed: {rows[-1]['error']}")
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"  {r['proxy_s']:.0f} s, peak {r['peak_rss_bytes'] / 2 ** 30:.2f} GiB, streamed {r['streamed']}")
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

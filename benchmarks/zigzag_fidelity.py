"""Does the analytical model rank and size layers as ZigZag does on the accelerator targets?

    python benchmarks/zigzag_fidelity.py     # writes results/benchmarks/zigzag_fidelity.{json,md,png}

Layers: every distinct conv and linear shape of ResNet-18, ResNet-50, MobileNetV2 and VGG-16
at 224 x 224 (batch 1), each as is (fp32), quantised to 8 and 4 bits, and factorised at about
a quarter of full rank (fp32 and 8 bits) where a rank saves weights. Every (layer, option) is
priced by the analytical model and by ZigZag (LOMA, latency-optimal, same nests, same spatial
mapping) on every accelerator target. Reported per target: Spearman rank correlation and the
median relative error |analytical - ZigZag| / ZigZag of latency and energy, the bytes each
level moves under each model, the energy per part, and the time per (layer, option) of each
backend. ZigZag's results are cached (`cost_models.zigzag`): a rerun costs seconds.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.progress import Progress  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from cost_models import AnalyticalCostModel, available_targets, load_target  # noqa: E402
from cost_models.zigzag import ZigZagCostModel  # noqa: E402
from hwsearch.graph import Layer, LayerGraph  # noqa: E402
from hwsearch.workloads.models.reference import build_reference  # noqa: E402
from hwsearch.compression import Option, layer_options  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "benchmarks"
MODELS = ("resnet18", "resnet50", "mobilenet_v2", "vgg16")
RANK_FRACTION = 1 / 4


def distinct_layers() -> list[tuple[str, Layer]]:
    """(model, layer) for the first layer of every distinct shape, in model order."""
    seen: dict[tuple, tuple[str, Layer]] = {}
    for name in MODELS:
        graph = LayerGraph.trace(build_reference(name), torch.zeros(1, 3, 224, 224))
        for layer in graph.compressible():
            shape = (layer.kind, layer.weight_shape, layer.in_shape, layer.out_shape, layer.groups, layer.stride,
                     layer.padding, layer.dilation)
            seen.setdefault(shape, (name, layer))
    return list(seen.values())


def variants(layer: Layer) -> list[tuple[str, Option]]:
    """fp32, 8 and 4 bits, and (where a rank saves weights) the rank nearest a quarter of full, fp32 and 8 bits."""
    out = [("fp32", Option()), ("b8", Option(bits=8)), ("b4", Option(bits=4))]
    ranks = sorted({o.rank for o in layer_options(layer) if o.rank})
    if ranks:
        full = min(layer.matrix_shape)
        rank = min(ranks, key=lambda r: abs(r - full * RANK_FRACTION))
        out += [("rank-fp32", Option(rank=rank)), ("rank-b8", Option(rank=rank, bits=8))]
    return out


def relative_error(a: np.ndarray, z: np.ndarray) -> np.ndarray:
    return np.abs(a - z) / z


def agreement(a, z, pick: np.ndarray) -> dict:
    """Spearman and median relative error of latency and energy over the pairs picked."""
    out = {"pairs": int(pick.sum())}
    for key, field in (("latency", "latency_s"), ("energy", "energy_j")):
        x, y = getattr(a, field)[pick], getattr(z, field)[pick]
        out[f"spearman_{key}"] = float(spearmanr(x, y).statistic) if pick.sum() > 2 else None
        out[f"median_relative_error_{key}"] = float(np.median(relative_error(x, y))) if pick.any() else None
        out[f"median_ratio_{key}"] = float(np.median(x / y)) if pick.any() else None
    return out


def compare(target_name: str, pairs, labels, lpf_limit: int, opt: str, workers: int, cache_dir, progress) -> dict:
    target = load_target(target_name)
    analytical = AnalyticalCostModel(target)
    best = np.inf
    for _ in range(5):                   # the analytical model is vectorised: time the whole table, best of 5
        start = time.perf_counter()
        a = analytical.price(pairs)
        best = min(best, time.perf_counter() - start)
    zigzag = ZigZagCostModel(target, lpf_limit=lpf_limit, opt=opt, cache_dir=cache_dir, workers=workers)
    start = time.perf_counter()
    z = zigzag.price(pairs, progress=progress)
    zigzag_wall = time.perf_counter() - start

    levels = list(a.levels)
    traffic_a, traffic_z = a.reads + a.writes, z.reads + z.writes
    per_level = {}
    for j, level in enumerate(levels):
        moved = traffic_z[:, j] > 0
        ratio = traffic_a[moved, j] / traffic_z[moved, j]
        per_level[level] = {
            "analytical_read_bytes": float(a.reads[:, j].sum()), "zigzag_read_bytes": float(z.reads[:, j].sum()),
            "analytical_write_bytes": float(a.writes[:, j].sum()), "zigzag_write_bytes": float(z.writes[:, j].sum()),
            "median_ratio_analytical_to_zigzag": float(np.median(ratio)) if moved.any() else None,
            "spearman": float(spearmanr(traffic_a[:, j], traffic_z[:, j]).statistic) if moved.sum() > 2 else None,
        }
    parts = ("mac", *levels)
    energy_parts = {part: {"analytical_j": float(a.energy_parts_j[:, k].sum()),
                           "zigzag_j": float(z.energy_parts_j[:, k].sum())} for k, part in enumerate(parts)}
    by_variant = {}
    for variant in dict.fromkeys(v for _, v in labels):
        pick = np.array([v == variant for _, v in labels])
        by_variant[variant] = {
            "pairs": int(pick.sum()),
            "median_latency_ratio": float(np.median(a.latency_s[pick] / z.latency_s[pick])),
            "median_energy_ratio": float(np.median(a.energy_j[pick] / z.energy_j[pick])),
        }
    caveats = {}
    for note in z.caveats:
        for c in filter(None, note.split(",")):
            caveats[c] = caveats.get(c, 0) + 1
    rows = [{"layer": layer_name, "variant": variant, "option": option.label,
             "macs": float(a.macs[i]),
             "latency_s": {"analytical": float(a.latency_s[i]), "zigzag": float(z.latency_s[i])},
             "energy_j": {"analytical": float(a.energy_j[i]), "zigzag": float(z.energy_j[i])},
             "bottleneck": {"analytical": a.row(i).bottleneck, "zigzag": z.row(i).bottleneck},
             "traffic_bytes": {lv: {"analytical": float(traffic_a[i, j]), "zigzag": float(traffic_z[i, j])}
                               for j, lv in enumerate(levels)},
             "caveats": z.caveats[i], "zigzag_simulate_s": float(z.simulate_s[i])}
            for i, ((layer_name, variant), (_, option)) in enumerate(zip(labels, pairs))]
    return {
        "pairs": len(pairs),
        "spearman_latency": float(spearmanr(a.latency_s, z.latency_s).statistic),
        "spearman_energy": float(spearmanr(a.energy_j, z.energy_j).statistic),
        "median_relative_error_latency": float(np.median(relative_error(a.latency_s, z.latency_s))),
        "median_relative_error_energy": float(np.median(relative_error(a.energy_j, z.energy_j))),
        "median_ratio_latency": float(np.median(a.latency_s / z.latency_s)),
        "median_ratio_energy": float(np.median(a.energy_j / z.energy_j)),
        "bottleneck_agreement": float(np.mean(a.bottleneck == z.bottleneck)),
        # where ZigZag expressed everything the analytical model priced (no caveat): the models alone differ
        "without_caveats": agreement(a, z, np.array([c == "" for c in z.caveats])),
        "by_variant": by_variant,
        "traffic_per_level": per_level,
        "energy_parts": energy_parts,
        "zigzag_caveats": caveats,
        "seconds_per_pair": {
            "analytical": best / len(pairs),
            "zigzag_cold_median": float(np.median(z.simulate_s)),   # simulating the pair's nests, as first run
            "zigzag_cold_mean": float(np.mean(z.simulate_s)),
            "zigzag_this_run": zigzag_wall / len(pairs),            # cache hits make a rerun cheap
        },
        "rows": rows,
    }


def plot(results: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, key, unit in ((axes[0], "latency_s", "s"), (axes[1], "energy_j", "J")):
        lo, hi = np.inf, 0.0
        for name, result in results.items():
            x = np.array([r[key]["analytical"] for r in result["rows"]])
            y = np.array([r[key]["zigzag"] for r in result["rows"]])
            ax.scatter(x, y, s=9, alpha=0.6, label=f"{name} (Spearman {result['spearman_' + key.split('_')[0]]:.3f})")
            lo, hi = min(lo, x.min(), y.min()), max(hi, x.max(), y.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel=f"analytical ({unit})", ylabel=f"ZigZag ({unit})",
               title=key.split("_")[0])
        ax.legend(fontsize=8)
    fig.suptitle("Analytical model vs ZigZag, per (layer, option)")
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def markdown(summary: dict) -> str:
    lines = [
        "# Analytical model vs ZigZag", "",
        f"{summary['layer_shapes']} distinct conv/linear shapes of {', '.join(MODELS)} at 224 x 224, "
        f"variants {', '.join(summary['variants'])}; ZigZag {summary['zigzag_version']}, LOMA lpf_limit "
        f"{summary['lpf_limit']}, {summary['opt']}-optimal mappings. Relative error = |analytical - ZigZag| / "
        "ZigZag; ratio = analytical / ZigZag.", "",
        "| target | pairs | Spearman latency | Spearman energy | median rel. err. latency | median rel. err. energy "
        "| median ratio latency | median ratio energy | bottleneck agrees | analytical s/pair | ZigZag s/pair (cold) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in summary["targets"].items():
        t = r["seconds_per_pair"]
        lines.append(f"| {name} | {r['pairs']} | {r['spearman_latency']:.3f} | {r['spearman_energy']:.3f} | "
                     f"{r['median_relative_error_latency']:.1%} | {r['median_relative_error_energy']:.1%} | "
                     f"{r['median_ratio_latency']:.2f} | {r['median_ratio_energy']:.2f} | "
                     f"{r['bottleneck_agreement']:.0%} | {t['analytical'] * 1e6:.1f} µs | "
                     f"{t['zigzag_cold_mean']:.2f} s |")
    lines += ["", "Pairs ZigZag prices without caveat (it expresses all the analytical model prices):", "",
              "| target | pairs | Spearman latency | Spearman energy | median rel. err. latency "
              "| median rel. err. energy | median ratio latency | median ratio energy |",
              "|---|---|---|---|---|---|---|---|"]
    for name, r in summary["targets"].items():
        c = r["without_caveats"]
        lines.append(f"| {name} | {c['pairs']} | {c['spearman_latency']:.3f} | {c['spearman_energy']:.3f} | "
                     f"{c['median_relative_error_latency']:.1%} | {c['median_relative_error_energy']:.1%} | "
                     f"{c['median_ratio_latency']:.2f} | {c['median_ratio_energy']:.2f} |")
    for name, r in summary["targets"].items():
        lines += ["", f"## {name}: bytes moved per level (all pairs) and energy per part", "",
                  "| level | analytical MB | ZigZag MB | median ratio | Spearman | analytical mJ | ZigZag mJ |",
                  "|---|---|---|---|---|---|---|"]
        for level, v in r["traffic_per_level"].items():
            a = (v["analytical_read_bytes"] + v["analytical_write_bytes"]) / 1e6
            z = (v["zigzag_read_bytes"] + v["zigzag_write_bytes"]) / 1e6
            median = v["median_ratio_analytical_to_zigzag"]
            ratio = "-" if median is None else f"{median:.2f}"
            rho = "-" if v["spearman"] is None else f"{v['spearman']:.3f}"
            e = r["energy_parts"][level]
            lines.append(f"| {level} | {a:,.1f} | {z:,.1f} | {ratio} | {rho} | {e['analytical_j'] * 1e3:,.2f} | "
                         f"{e['zigzag_j'] * 1e3:,.2f} |")
        e = r["energy_parts"]["mac"]
        lines.append(f"| (MACs) | | | | | {e['analytical_j'] * 1e3:,.2f} | {e['zigzag_j'] * 1e3:,.2f} |")
        variants = ", ".join(f"{k} {v['median_latency_ratio']:.2f} / {v['median_energy_ratio']:.2f}"
                             for k, v in r["by_variant"].items())
        lines += ["", f"Median ratio latency / energy by variant: {variants}.",
                  f"ZigZag caveats (pairs): {r['zigzag_caveats'] or 'none'}."]
    return "\n".join(lines) + "\n"


def write_rows(results: dict, path: Path) -> None:
    """Every (target, layer, option): both backends' latency, energy and bottleneck (4 significant digits)."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["target", "layer", "variant", "macs", "latency_s_analytical", "latency_s_zigzag",
                      "energy_j_analytical", "energy_j_zigzag", "bottleneck_analytical", "bottleneck_zigzag",
                      "caveats"])
        for name, r in results.items():
            for row in r["rows"]:
                out.writerow([name, row["layer"], row["variant"], int(row["macs"]),
                              *(f"{row[k][b]:.4g}" for k in ("latency_s", "energy_j") for b in ("analytical", "zigzag")),
                              row["bottleneck"]["analytical"], row["bottleneck"]["zigzag"], row["caveats"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lpf-limit", type=int, default=6, help="LOMA loop prime factors (ZigZag's default: 6)")
    parser.add_argument("--opt", choices=("latency", "energy"), default="latency", help="what LOMA minimises")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for ZigZag cache misses")
    parser.add_argument("--cache-dir", default=None, help="ZigZag cache (default $HWSEARCH_CACHE/zigzag)")
    args = parser.parse_args()

    targets = [name for name in available_targets() if load_target(name).kind == "accelerator"]
    layers = distinct_layers()
    pairs, labels = [], []
    for model, layer in layers:
        for variant, option in variants(layer):
            pairs.append((layer, option))
            labels.append((f"{model}:{layer.name}", variant))
    results = {}
    with Progress() as progress:
        for name in targets:
            results[name] = compare(name, pairs, labels, args.lpf_limit, args.opt, args.workers, args.cache_dir,
                                    progress)
    summary = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "models": list(MODELS), "layer_shapes": len(layers), "variants": list(dict.fromkeys(v for _, v in labels)),
        "rank_fraction": RANK_FRACTION, "lpf_limit": args.lpf_limit, "opt": args.opt, "workers": args.workers,
        "zigzag_version": ZigZagCostModel(load_target(targets[0]), cache_dir=args.cache_dir).version,
        "relative_error": "|analytical - zigzag| / zigzag", "targets": results,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    write_rows(results, OUT / "zigzag_fidelity.csv")
    compact = {**summary, "targets": {name: {k: v for k, v in r.items() if k != "rows"} for name, r in results.items()}}
    (OUT / "zigzag_fidelity.json").write_text(json.dumps(compact, indent=1) + "\n")
    (OUT / "zigzag_fidelity.md").write_text(markdown(summary))
    plot(results, OUT / "zigzag_fidelity.png")
    for name, r in results.items():
        print(f"{name}: Spearman latency {r['spearman_latency']:.3f}, energy {r['spearman_energy']:.3f}; median "
              f"relative error latency {r['median_relative_error_latency']:.1%}, energy "
              f"{r['median_relative_error_energy']:.1%}")


if __name__ == "__main__":
    main()

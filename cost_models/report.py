"""`hwsearch cost`: what a model costs on a target, layer by layer, before any compression.

    report = cost_report(model="resnet50", input_shape=(3, 224, 224), target=load_target("cortex-a76"))
    print(format_table(report))          # or json.dumps(report)

The model is an `nn.Module`, a reference architecture by name, a digits model, or a user's
`package.module:function` / `path/to/file.py:function`; it is traced once and every op
(compressible or not) is priced by the chosen backend.
"""
from __future__ import annotations

import torch
from torch import nn

from cost_models import Target, make_cost_model
from hwsearch.errors import HwsearchError
from hwsearch.graph import Layer, LayerGraph
from hwsearch.workloads import resolve_model
from hwsearch.compression import Option


def cost_report(*, model: str | nn.Module, input_shape: tuple[int, ...], target: Target, batch: int = 1,
                backend: str = "analytical", progress=None) -> dict:
    """Per-op costs and totals of one model on one target, as plain values (JSON-ready)."""
    name = model if isinstance(model, str) else type(model).__name__
    module = (resolve_model(model) if isinstance(model, str) else model).eval()
    with torch.no_grad():
        graph = LayerGraph.trace(module, torch.zeros(1, *input_shape))
    ops = graph.ops(fused=not target.fuses_activations)
    if not ops:
        raise HwsearchError(f"model {name} has no op hwsearch can cost (no conv, linear, matmul or pooling)")
    model = make_cost_model(backend, target, batch=batch)
    pairs = [(op, Option()) for op in ops]
    # a simulator takes seconds a layer: show its progress (the analytical model answers at once)
    costs = model.price(pairs, progress=progress) if backend != "analytical" and progress else model.price(pairs)
    layers = []
    for i, op in enumerate(ops):
        row = costs.row(i)
        layers.append({"name": op.name, "kind": op.kind, "shape": _shape(op), "compressible": op.compressible,
                       "macs": row.macs, "weight_bytes": row.weight_bytes if op.kind in ("conv", "linear") else 0,
                       "latency_s": row.latency_s, "energy_j": row.energy_j, "bottleneck": row.bottleneck,
                       "reads": row.reads, "writes": row.writes, "energy_parts_j": row.energy_parts_j})
    total_latency = float(costs.latency_s.sum())
    bound: dict[str, float] = {}
    for layer in layers:
        bound[layer["bottleneck"]] = bound.get(layer["bottleneck"], 0.0) + layer["latency_s"] / total_latency
    total = {"macs": int(sum(l["macs"] for l in layers)), "latency_s": total_latency,
             "energy_j": float(costs.energy_j.sum()), "dram_bytes": float(costs.reads[:, -1].sum() + costs.writes[:, -1].sum()),
             "weight_bytes": int(sum(l["weight_bytes"] for l in layers)),
             "reads": dict(zip(costs.levels, costs.reads.sum(axis=0).tolist())),
             "writes": dict(zip(costs.levels, costs.writes.sum(axis=0).tolist())),
             "energy_parts_j": dict(zip(("mac", *costs.levels), costs.energy_parts_j.sum(axis=0).tolist())),
             "latency_share_by_bottleneck": dict(sorted(bound.items(), key=lambda kv: -kv[1]))}
    return {"model": name, "input": list(input_shape), "batch": batch, "target": target.name,
            "backend": backend, "levels": list(costs.levels), "total": total, "layers": layers}


def _shape(op: Layer) -> str:
    if op.kind in ("conv", "conv_transpose"):
        kernel = "x".join(map(str, op.weight_shape[2:]))
        groups = f" g{op.groups}" if op.groups > 1 else ""
        stride = f" s{op.stride[0]}" if op.stride and op.stride[0] > 1 else ""
        return f"{op.in_shape[1]}->{op.out_shape[1]} {kernel}{stride}{groups} @{'x'.join(map(str, op.out_shape[2:]))}"
    if op.kind == "linear":
        return f"{op.weight_shape[1]}->{op.weight_shape[0]}"
    if op.kind == "matmul":
        return f"{op.groups}x ({op.weight_shape[1]}->{op.weight_shape[0]})"
    return "x".join(map(str, op.out_shape[1:]))


def _si(value: float, unit: str) -> str:
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def format_table(report: dict, *, top: int | None = None) -> str:
    """The per-layer table and the totals as text (the slowest `top` layers, or all)."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    levels = report["levels"]
    table = Table(title=f"{report['model']} {'x'.join(map(str, report['input']))} batch {report['batch']} on "
                        f"{report['target']} ({report['backend']})", show_edge=False, pad_edge=False)
    for column, justify in (("layer", "left"), ("kind", "left"), ("shape", "left"), ("MACs", "right"),
                            ("latency", "right"), ("energy", "right"), *((f"{l} B", "right") for l in levels),
                            ("bound by", "left")):
        table.add_column(column, justify=justify, no_wrap=True)
    layers = report["layers"]
    if top is not None:
        keep = {id(l) for l in sorted(layers, key=lambda l: -l["latency_s"])[:top]}
        layers = [l for l in layers if id(l) in keep]
    for l in layers:
        traffic = [_si(l["reads"][v] + l["writes"][v], "") for v in levels]
        table.add_row(l["name"], l["kind"], l["shape"], _si(l["macs"], ""), f"{l['latency_s'] * 1e3:.3f} ms",
                      f"{l['energy_j'] * 1e3:.3f} mJ", *traffic, l["bottleneck"])
    t = report["total"]
    table.add_section()
    table.add_row("total", "", f"{len(report['layers'])} ops", _si(t["macs"], ""), f"{t['latency_s'] * 1e3:.3f} ms",
                  f"{t['energy_j'] * 1e3:.3f} mJ",
                  *(_si(t["reads"][v] + t["writes"][v], "") for v in levels), "")
    buffer = StringIO()
    Console(file=buffer, width=250, force_terminal=False, color_system=None).print(table)
    shares = ", ".join(f"{name} {share:.0%}" for name, share in t["latency_share_by_bottleneck"].items())
    weights = f"{t['weight_bytes']:,} B of fp32 weights" if t["weight_bytes"] else ""
    return (buffer.getvalue().rstrip() + f"\nlatency {t['latency_s'] * 1e3:.3f} ms bound by: {shares}; "
            f"energy {t['energy_j'] * 1e3:.3f} mJ; DRAM {_si(t['dram_bytes'], 'B')}; {weights}\n")

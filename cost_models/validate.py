"""How far to trust a target's cost model: its predictions against real latencies.

Three sources of truth, by kind of target:

- `host` targets: compressed variants of several models, run on this machine with the
  runtime the target describes (onnxruntime with int8 QDQ kernels, or torch eager),
  timed, and compared with the analytical model's latency (`validate_host`);
- published targets (phone CPUs and GPUs, datacenter GPUs): the whole-model latencies
  in `published.yaml`, with the figures the kernel efficiencies were fitted on kept
  apart from the held-out ones (`validate_published`);
- accelerators: ZigZag, a cycle-level simulator, on the same loop nests
  (`benchmarks/zigzag_fidelity.py`).

Agreement is reported as Spearman's rank correlation (does the model order variants
right, which is what a search needs) and the median relative error (how far off the
absolute figures are).
"""
from __future__ import annotations

import copy
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from cost_models import Target, make_cost_model
from cost_models.calibrate import fit, predict, published
from hwsearch.errors import HwsearchError
from hwsearch.graph import LayerGraph
from hwsearch.compression import Option, Plan, layer_options

HOST_MODELS = (("resnet18", (3, 224, 224)), ("mobilenet_v2", (3, 224, 224)), ("squeezenet1_1", (3, 224, 224)),
               ("resnet18_digits", (1, 8, 8)))


@dataclass(frozen=True)
class Agreement:
    """Predicted against true latencies of n cases."""
    n: int
    spearman: float
    median_abs_error: float

    @classmethod
    def of(cls, predicted: list[float], true: list[float]) -> "Agreement":
        errors = np.abs(np.array(predicted) / np.array(true) - 1)
        rho = float(spearmanr(predicted, true).statistic) if len(true) > 2 else float("nan")
        return cls(len(true), rho, float(np.median(errors)))


def random_plan(layers, rng: random.Random, p_rank: float, p_int8: float) -> Plan:
    """A random compression plan: some layers low-rank, some 8-bit, some sparse (by the option grid)."""
    plan = {}
    for layer in layers:
        grid = layer_options(layer)
        ranks = sorted({o.rank for o in grid if o.rank is not None})
        rank = rng.choice(ranks) if ranks and rng.random() < p_rank else None
        bits = 8 if rng.random() < p_int8 else 32
        sparsity = rng.choice((0.0, 0.0, 0.5))
        plan[layer.name] = Option(rank, sparsity, bits)
    return plan


def validate_host(target: Target, *, variants: int = 8, models=HOST_MODELS, seed: int = 0, progress=None) -> dict:
    """Measure compressed variants of `models` with the target's runtime; compare with predictions."""
    from cost_models.measure import measure_onnxruntime, measure_torch
    from hwsearch.compression import apply_
    from hwsearch.workloads import build_model
    from hwsearch.export import export_onnx, plain_

    runtime = target.runtime
    if runtime not in ("onnxruntime", "torch"):
        raise HwsearchError(f"target {target.name} describes runtime {runtime or 'none'!r}; measured validation "
                            "runs onnxruntime or torch on this machine: use a target from `hwsearch calibrate host`")
    if runtime == "torch" and any(c.max_weight_bits < 32 for c in target.compute):
        raise HwsearchError(f"target {target.name}: torch eager has no int8 kernels, so its target has one fp32 path")
    rng = random.Random(seed)
    task = progress.add_task(f"validating {target.name}", total=len(models) * (variants + 1)) if progress else None
    rows = []
    for name, shape in models:
        torch.manual_seed(seed)
        base = build_model(name).eval()
        x = torch.randn(1, *shape)
        graph = LayerGraph.trace(base, x)
        layers = graph.compressible()
        settings = [(0.0, 0.0)] + [((i % 4) / 3, (i // 4 % 3) / 2) for i in range(1, variants + 1)]
        for p_rank, p_int8 in settings:
            plan = random_plan(layers, rng, p_rank, p_int8 if runtime == "onnxruntime" else 0.0)
            if p_rank == 0 and p_int8 == 0:
                plan = {l.name: Option() for l in layers}
            model = plain_(apply_(copy.deepcopy(base), plan))
            if runtime == "torch":
                measured = measure_torch(model, x).median_s
            else:
                int8 = {n for n, o in plan.items() if o.bits <= 8}
                with tempfile.TemporaryDirectory(prefix="hwsearch-validate-") as tmp:
                    path = export_onnx(model, x, Path(tmp) / "model.onnx", int8_layers=int8 or None,
                                       calibration=torch.randn(8, *shape) if int8 else None)
                    measured = measure_onnxruntime(path, x).median_s
            predicted, warm = _predict(target, graph, plan)
            rows.append({"model": name, "input": "x".join(map(str, shape)), "low_rank_layers": sum(
                o.rank is not None for o in plan.values()), "int8_layers": sum(o.bits <= 8 for o in plan.values()),
                "layers": len(layers), "warm_share": warm, "predicted_s": predicted, "measured_s": measured,
                "error": predicted / measured - 1})
            if progress:
                progress.advance(task)
    if progress:
        progress.remove_task(task)
    agreement = Agreement.of([r["predicted_s"] for r in rows], [r["measured_s"] for r in rows])
    kinds = {"float layers only": lambda r: r["int8_layers"] == 0,
             "every layer int8": lambda r: r["int8_layers"] == r["layers"],
             "int8 and float mixed": lambda r: 0 < r["int8_layers"] < r["layers"]}
    by_kind = {}
    for kind, chosen in kinds.items():
        subset = [r for r in rows if chosen(r)]
        if subset:
            by_kind[kind] = Agreement.of([r["predicted_s"] for r in subset], [r["measured_s"] for r in subset]).__dict__
    return {"target": target.name, "runtime": runtime, "rows": rows, "agreement": agreement.__dict__,
            "by_kind": by_kind}


def _predict(target: Target, graph: LayerGraph, plan: Plan) -> tuple[float, float]:
    """Whole-model latency of a plan, and the share of its weights that stays on chip between inferences."""
    from cost_models.table import plan_costs

    totals = plan_costs(make_cost_model("analytical", target), graph, plan)
    return totals["latency_s"], totals["warm_share"]


def validate_published(target: Target, parameters: tuple[str, ...]) -> dict:
    """Refit the target's kernel figures on its calibration figures; report every published figure."""
    figures = published(target.name)
    if not figures:
        raise HwsearchError(f"no published latencies for target {target.name} in cost_models/published.yaml")
    fitted, report = fit(target, figures, parameters)
    out = {"target": target.name, "fitted": report.values, "rows": report.rows}
    for role in ("calibration", "validation"):
        rows = [r for r in report.rows if r["role"] == role]
        if rows:
            out[role] = Agreement.of([r["predicted_ms"] for r in rows], [r["published_ms"] for r in rows]).__dict__
    return out


def current_errors(target: Target) -> list[dict]:
    """The target as it is (no refit) against its published figures."""
    rows = []
    for figure in published(target.name):
        predicted = predict(target, figure)
        rows.append({"model": figure.model, "precision": figure.precision, "batch": figure.batch,
                     "role": figure.role, "published_ms": figure.latency_ms, "predicted_ms": predicted * 1e3,
                     "error": predicted / figure.latency_s - 1, "runtime": figure.runtime})
    return rows


def validate_simulator(target: Target, *, layers: int = 12, progress=None) -> dict:
    """The analytical model against ZigZag on `layers` layer shapes of ResNet-18 at 224 x 224 (fp, 8-bit, low rank)."""
    from cost_models.zigzag import ZigZagCostModel
    from hwsearch.workloads import build_model

    graph = LayerGraph.trace(build_model("resnet18").eval(), torch.zeros(1, 3, 224, 224))
    convs = graph.compressible()
    picked = [convs[round(i * (len(convs) - 1) / max(1, layers - 1))] for i in range(min(layers, len(convs)))]
    pairs = []
    for i, layer in enumerate(picked):
        ranks = [o.rank for o in layer_options(layer) if o.rank is not None]
        option = (Option(), Option(bits=8), Option(rank=ranks[0], bits=8) if ranks else Option(bits=4))[i % 3]
        pairs.append((layer, option))
    analytical = make_cost_model("analytical", target).price(pairs)
    simulated = ZigZagCostModel(target).price(pairs, progress=progress)
    rows = [{"layer": l.name, "option": o.label, "analytical_latency_s": float(a), "zigzag_latency_s": float(z),
             "analytical_energy_j": float(ae), "zigzag_energy_j": float(ze)}
            for (l, o), a, z, ae, ze in zip(pairs, analytical.latency_s, simulated.latency_s, analytical.energy_j,
                                            simulated.energy_j)]
    return {"target": target.name, "rows": rows,
            "latency": Agreement.of(list(analytical.latency_s), list(simulated.latency_s)).__dict__,
            "energy": Agreement.of(list(analytical.energy_j), list(simulated.energy_j)).__dict__}


def validate_target(target: Target, *, variants: int = 8, layers: int = 12, progress=None) -> dict:
    """The check that fits the target's kind, with a short text summary under "text"."""
    if target.runtime in ("onnxruntime", "torch"):
        report = validate_host(target, variants=variants, progress=progress)
        a = report["agreement"]
        lines = [f"{target.name} ({target.runtime}, measured on this machine, one thread): {a['n']} compressed "
                 f"variants, Spearman {a['spearman']:.3f}, median error {a['median_abs_error']:.1%}"]
        lines += [f"  {kind}: {a['n']} variants, Spearman {a['spearman']:.3f}, median error {a['median_abs_error']:.1%}"
                  for kind, a in report["by_kind"].items()]
        lines += [f"  {r['model']:16s} {r['low_rank_layers']:3d} low-rank, {r['int8_layers']:3d} int8 of {r['layers']:3d}"
                  f" layers: predicted {r['predicted_s'] * 1e3:8.3f} ms, measured {r['measured_s'] * 1e3:8.3f} ms "
                  f"({r['error']:+.0%})" for r in report["rows"]]
    elif target.kind == "accelerator":
        report = validate_simulator(target, layers=layers, progress=progress)
        lat, en = report["latency"], report["energy"]
        lines = [f"{target.name} against ZigZag on {lat['n']} layers of ResNet-18: latency Spearman "
                 f"{lat['spearman']:.3f}, median error {lat['median_abs_error']:.1%}; energy Spearman "
                 f"{en['spearman']:.3f}, median error {en['median_abs_error']:.1%}"]
        lines += [f"  {r['layer']:18s} {r['option']:14s} latency {r['analytical_latency_s'] * 1e3:9.4f} vs "
                  f"{r['zigzag_latency_s'] * 1e3:9.4f} ms, energy {r['analytical_energy_j'] * 1e6:9.2f} vs "
                  f"{r['zigzag_energy_j'] * 1e6:9.2f} uJ" for r in report["rows"]]
    else:
        rows = current_errors(target)
        if not rows:
            raise HwsearchError(f"target {target.name} has no published latencies in cost_models/published.yaml "
                                "and no runtime on this machine to measure; nothing to validate it against")
        report = {"target": target.name, "rows": rows}
        lines = [f"{target.name} against published latencies (cost_models/published.yaml):"]
        for role in ("calibration", "validation"):
            chosen = [r for r in rows if r["role"] == role]
            if chosen:
                a = Agreement.of([r["predicted_ms"] for r in chosen], [r["published_ms"] for r in chosen])
                report[role] = a.__dict__
                lines.append(f"  {role}: {a.n} figures, Spearman {a.spearman:.3f}, median error {a.median_abs_error:.1%}")
        lines += [f"  {r['role'][:5]} {r['model']:28s} {r['precision']:5s} b{r['batch']:<3d} published {r['published_ms']:9.3f} ms, predicted "
                  f"{r['predicted_ms']:9.3f} ms ({r['error']:+.0%})" for r in rows]
    report["text"] = "\n".join(lines)
    return report

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
import math
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
from hwsearch.layer_graph import LayerGraph
from hwsearch.options import Option, Plan, layer_options

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
    from hwsearch.compress import apply_
    from hwsearch.models import build_model
    from hwsearch.onnx_export import export_onnx, plain_

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
    return {"target": target.name, "runtime": runtime, "rows": rows, "agreement": agreement.__dict__}


def _predict(target: Target, graph: LayerGraph, plan: Plan) -> tuple[float, float]:
    """Whole-model latency of a plan, and the share of its weights that stays on chip between inferences."""
    from hwsearch.cost_table import plan_costs

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
        rows.append({"model": figure.model, "role": figure.role, "published_ms": figure.latency_ms,
                     "predicted_ms": predicted * 1e3, "error": predicted / figure.latency_s - 1})
    return rows

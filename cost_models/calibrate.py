"""Fit a target's kernel figures to published whole-model latencies, and report the fit.

`published.yaml` (beside this file) lists latencies that vendors and runtime authors
published, each with its device, runtime, kernels and source. The entries marked
`role: calibration` (for a CPU: ResNet-50, MobileNetV2 and VGG-16 only) fix the few
fitted figures of a target (`cpu.gemm_efficiency`, ...) by least squares on
log(predicted / published); the others are held out to say how well the model
predicts architectures it was not tuned to.

    figures = published("cortex-a76")
    fitted, report = fit(load_target("cortex-a76"), figures, CPU_PARAMETERS)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml
from scipy.optimize import least_squares

from cost_models import make_cost_model
from cost_models.target import Target
from hwsearch.errors import TargetError

PUBLISHED = Path(__file__).resolve().with_name("published.yaml")
PRECISION_BITS = {"fp32": 32, "tf32": 32, "fp16": 16, "fixed16": 16, "int8": 8, "int4": 4}
CPU_PARAMETERS = ("cpu.gemm_efficiency", "cpu.depthwise_efficiency", "cpu.winograd.efficiency")
GPU_PARAMETERS = ("gpu.gemm_efficiency", "gpu.layer_overhead_s")


@dataclass(frozen=True)
class Published:
    """One published whole-model latency."""
    target: str
    model: str                 # a reference architecture name
    input: str                 # e.g. 3x224x224
    batch: int
    latency_ms: float
    precision: str             # the weights' path: fp32, fp16, int8, ...
    role: str                  # calibration | validation
    runtime: str
    source: str
    kernels: str = ""
    device_clock_hz: float | None = None
    devices: int = 1           # instances of the target the measurement used (a package of chiplets)
    layers: str = "all"        # "conv": only the convolutional layers were timed
    note: str = ""

    def __post_init__(self):
        # YAML 1.1 reads 2.96e9 (no sign in the exponent) as a string
        for name in ("latency_ms", "device_clock_hz"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))

    @property
    def latency_s(self) -> float:
        return self.latency_ms * 1e-3


def published(target: str | None = None, *, role: str | None = None) -> list[Published]:
    """The published figures (of one target, of one role)."""
    entries = yaml.safe_load(PUBLISHED.read_text(encoding="utf-8")) or []
    figures = [Published(**entry) for entry in entries]
    return [f for f in figures if (target is None or f.target == target) and (role is None or f.role == role)]


@lru_cache(maxsize=64)
def _graph(model: str, input_spec: str):
    """The layer graph of a reference architecture at one input size (traced once)."""
    import torch

    from hwsearch.graph import LayerGraph
    from hwsearch.workloads import build_model

    shape = tuple(int(d) for d in input_spec.split("x"))
    return LayerGraph.trace(build_model(model).eval(), torch.zeros(1, *shape))


def predict(target: Target, figure: Published, backend: str = "analytical") -> float:
    """Predicted latency (seconds) of the figure's model, precision and batch on `target`."""
    from hwsearch.compression import Option

    if figure.device_clock_hz:
        target = target.model_copy(update={"clock_hz": figure.device_clock_hz})
    bits = PRECISION_BITS[figure.precision]
    model = make_cost_model(backend, target, batch=figure.batch)
    ops = _graph(figure.model, figure.input).ops(fused=not target.fuses_activations)
    if figure.layers == "conv":
        ops = [op for op in ops if op.kind == "conv"]
    pairs = [(op, Option(bits=bits) if op.compressible else Option()) for op in ops]
    # several devices share the work evenly (the best case: a package of chiplets)
    return float(model.price(pairs).latency_s.sum()) / figure.devices


def with_values(target: Target, values: dict[str, float]) -> Target:
    """A copy of `target` with dotted fields (`cpu.winograd.efficiency`) set."""
    data = target.model_dump()
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            if node.get(key) is None:
                raise TargetError(f"target {target.name} has no {'.'.join(parents)} section to set {dotted}")
            node = node[key]
        node[leaf] = value
    return Target.model_validate(data)


@dataclass(frozen=True)
class FitReport:
    values: dict[str, float]
    rows: list[dict]            # one per figure: model, role, published_ms, predicted_ms, error

    def errors(self, role: str) -> list[float]:
        return [r["error"] for r in self.rows if r["role"] == role]


def fit(target: Target, figures: list[Published], parameters: tuple[str, ...]) -> tuple[Target, FitReport]:
    """Least squares on log(predicted / published) over the calibration figures; reports every figure."""
    calibration = [f for f in figures if f.role == "calibration"]
    if not calibration:
        raise TargetError(f"no calibration figures for target {target.name} in {PUBLISHED}")
    parameters = tuple(p for p in parameters if _get(target, p) is not None)
    start = np.array([_get(target, p) for p in parameters], dtype=float)
    low = np.array([0.0 if p.endswith("_s") else 0.01 for p in parameters])
    high = np.array([1e-2 if p.endswith("_s") else 1.0 for p in parameters])
    scale = np.where(start > 0, start, 1e-5)

    def residuals(x: np.ndarray) -> np.ndarray:
        trial = with_values(target, dict(zip(parameters, (x * scale).tolist())))
        return np.array([math.log(predict(trial, f) / f.latency_s) for f in calibration])

    solution = least_squares(residuals, start / scale, bounds=(low / scale, high / scale), x_scale="jac")
    values = {p: float(f"{v:.4g}") for p, v in zip(parameters, solution.x * scale)}
    fitted = with_values(target, values)
    rows = []
    for f in figures:
        predicted = predict(fitted, f)
        rows.append({"model": f.model, "input": f.input, "batch": f.batch, "precision": f.precision,
                     "role": f.role, "published_ms": f.latency_ms, "predicted_ms": predicted * 1e3,
                     "error": predicted / f.latency_s - 1, "runtime": f.runtime, "source": f.source})
    return fitted, FitReport(values, rows)


def _get(target: Target, dotted: str):
    node = target
    for key in dotted.split("."):
        node = getattr(node, key, None)
        if node is None:
            return None
    return node

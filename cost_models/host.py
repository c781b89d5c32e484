"""`hwsearch calibrate host`: this machine's CPU as a target, measured rather than copied.

Micro-benchmarks (`microbench`) give the hardware figures: cache sizes (sysfs), the
sustained bandwidth of each level and of DRAM (a working-set sweep), the peak MAC rate
of one core as the runtime delivers it (fp32, and int8 for onnxruntime), and the
runtime's fixed cost per layer. Then about twenty single layers of typical shapes
(1x1, 3x3, strided, depthwise, linear, a stem) are timed, and the kernel figures of
the target's `cpu` section are fitted so that the analytical model predicts them:
least squares on log(predicted / measured). The result is a target YAML whose every
number says how it was measured.

Two runtimes, two targets: `host` (onnxruntime, the deployment runtime: fp32 and int8
QDQ kernels) and `host-torch` (torch eager: fp32 only, quantised weights run
dequantised).
"""
from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import least_squares, nnls

from cost_models import make_cost_model, weights_stay_on_chip
from cost_models.target import Target, parse_target
from hwsearch.atomic_write import write_text
from hwsearch.graph import Layer, LayerGraph
from hwsearch.compression import Option

RUNTIMES = {"onnxruntime": "host", "torch": "host-torch"}
FITTED = ("gemm_efficiency", "conv_efficiency", "depthwise_efficiency", "reduction_overhead", "weight_reorder_passes")

# single layers the kernel figures are fitted on: (kind, in, out, kernel, stride, groups, size)
SHAPES = [
    ("conv", 64, 64, 1, 1, 1, 56), ("conv", 256, 64, 1, 1, 1, 56), ("conv", 64, 256, 1, 1, 1, 56),
    ("conv", 512, 128, 1, 1, 1, 28), ("conv", 256, 1024, 1, 1, 1, 14), ("conv", 1024, 2048, 1, 2, 1, 14),
    ("conv", 16, 96, 1, 1, 1, 112), ("conv", 960, 160, 1, 1, 1, 7), ("conv", 32, 16, 1, 1, 1, 112),
    ("conv", 64, 64, 3, 1, 1, 56), ("conv", 128, 128, 3, 1, 1, 28), ("conv", 256, 256, 3, 1, 1, 14),
    ("conv", 512, 512, 3, 1, 1, 7), ("conv", 128, 256, 3, 2, 1, 28), ("conv", 3, 32, 3, 2, 1, 224),
    ("conv", 3, 64, 7, 2, 1, 224), ("conv", 32, 32, 3, 1, 32, 112), ("conv", 144, 144, 3, 2, 144, 56),
    ("conv", 384, 384, 3, 1, 384, 14), ("conv", 960, 960, 3, 1, 960, 7), ("linear", 512, 1000, 1, 1, 1, 1),
    ("linear", 4096, 4096, 1, 1, 1, 1), ("linear", 1280, 1000, 1, 1, 1, 1), ("conv", 48, 48, 5, 1, 48, 28),
]


# int8 layers among int8 neighbours (onnxruntime only): square shapes, so that they chain
INT8_SHAPES = [
    ("conv", 64, 64, 1, 1, 1, 56), ("conv", 256, 256, 1, 1, 1, 14), ("conv", 64, 64, 3, 1, 1, 56),
    ("conv", 256, 256, 3, 1, 1, 14), ("conv", 32, 32, 3, 1, 32, 112), ("conv", 144, 144, 3, 1, 144, 56),
    ("conv", 384, 384, 3, 1, 384, 14), ("conv", 960, 960, 3, 1, 960, 7), ("conv", 256, 256, 3, 1, 1, 2),
    ("conv", 512, 512, 3, 1, 1, 1),
]


@dataclass(frozen=True)
class HostFigures:
    """What the micro-benchmarks measured (SI units)."""
    runtime: str
    cpu_model: str
    clock_hz: float
    caches: list[tuple[str, int]]
    bandwidth: dict[str, float]             # bytes/s per cache level and "DRAM"
    fp32_macs_per_s: float
    int8_macs_per_s: float | None
    layer_overhead_s: float
    skips_padding: bool
    shapes: list[tuple]
    latencies_s: list[float]
    int8_alone_s: list[float] = ()          # INT8_SHAPES: one int8 layer between float input and output
    int8_in_chain_s: list[float] = ()       # the same layer among int8 neighbours
    float_in_chain_s: list[float] = ()      # the same layer in float among float neighbours
    alternating_s: list[float] = ()         # float, int8, float, int8: four width changes (and the model's end)
    call_s: float = 0.0
    bandwidth_sources: dict = None          # level -> where its figure came from, when not the working-set sweep


def measure(runtime: str, progress=None) -> HostFigures:
    """Run the micro-benchmarks for `runtime` (onnxruntime or torch); about half a minute."""
    from cost_models import microbench as mb

    steps = ["caches and bandwidth", "peak MAC rates", "fixed costs", "single layers"]
    task = progress.add_task(f"calibrating host ({runtime})", total=len(steps)) if progress else None

    def step():
        if progress:
            progress.advance(task)

    caches = mb.cache_sizes()
    bandwidth = mb.memory_bandwidth(mb.bandwidth_curve(), caches)
    step()
    big_pointwise = mb.LayerShape("conv", 256, 256, 1, 1, 1, 56)
    if runtime == "onnxruntime":
        fp32 = big_pointwise.macs / mb.layer_latencies([big_pointwise], "onnxruntime")[0]
        int8 = mb.int8_macs_per_s()
    else:
        fp32, int8 = max(mb.fp32_matmul_macs_per_s(), mb.fp32_conv_macs_per_s()), None
    step()
    fixed = mb.overhead(runtime)
    # a 3x3 conv on a 1x1 map meets padding with 8 of its 9 taps: a kernel that skips them costs as a 1x1 conv
    one, three = mb.layer_latencies([mb.LayerShape("conv", 512, 512, 1, 1, 1, 1),
                                     mb.LayerShape("conv", 512, 512, 3, 1, 1, 1)], runtime)
    skips_padding = three - fixed.call_s < 3 * (one - fixed.call_s)
    step()
    shapes = [mb.LayerShape(*shape) for shape in SHAPES]
    latencies = [t - fixed.call_s for t in mb.layer_latencies(shapes, runtime)]
    # the peak is the best rate seen: a kernel efficiency is a share of it
    fp32 = max([fp32] + [s.macs / t for s, t in zip(shapes, latencies)])
    alone, chained, float_chained, mixed = [], [], [], []
    if runtime == "onnxruntime":
        square = [mb.LayerShape(*shape) for shape in INT8_SHAPES]
        pairs = mb.in_chain(square, "onnxruntime-int8")
        alone, chained = [a - fixed.call_s for a, _ in pairs], [c for _, c in pairs]
        float_chained = [c for _, c in mb.in_chain(square, "onnxruntime")]
        mixed = [t - fixed.call_s for t in mb.alternating(square)]
    step()
    if progress:
        progress.remove_task(task)
    return HostFigures(runtime, _cpu_model(), _clock_hz(), caches, bandwidth, fp32, int8, fixed.layer_s,
                       skips_padding, SHAPES, latencies, alone, chained, float_chained, mixed, fixed.call_s)


@dataclass(frozen=True)
class Identity:
    """What a target file written from measurements says about itself, beyond the figures: its name, first
    line and how each figure was measured, and the register file the fit's micro-kernel tile assumes."""
    name: str
    header: str
    how: str
    registers: tuple[str, ...]          # the memory list's `registers` entry, YAML lines
    register_tile: str                  # the cpu section's register_tile line


def host_identity(runtime: str) -> Identity:
    """This machine, as `hwsearch calibrate host` writes it (an x86-64 core with AVX-512)."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    return Identity(
        RUNTIMES[runtime],
        f"# This machine's CPU, one core, batch 1, as {runtime} runs it: written by `hwsearch calibrate host"
        f"{' --runtime torch' if runtime == 'torch' else ''}`.",
        f"measured: hwsearch calibrate host ({runtime}), {when}",
        ("  - name: registers",
         "    size_bytes: 2048        # source: x86-64 AVX-512: 32 zmm registers x 64 B",
         "    bandwidth_bytes_per_cycle: 384   # derived: 2 FMA/cycle x 3 register operands x 64 B",
         "    read_pj_per_byte: 0.0   # assumption: register reads are part of the per-MAC energy",
         "    write_pj_per_byte: 0.0  # assumption: as above"),
        "  register_tile: [8, 32]    # assumption: an AVX-512 fp32 micro-kernel of 8 rows x 2 zmm vectors of accumulators")


def build_target(figures: HostFigures, identity: Identity | None = None) -> tuple[str, Target, dict]:
    """The target YAML text for the measured figures, with its kernel figures fitted; and the fit report.
    `identity`: what the file says it is (default: this machine, `host_identity`)."""
    identity = identity or host_identity(figures.runtime)
    draft = _yaml(figures, {"gemm_efficiency": 0.8, "conv_efficiency": 0.8, "depthwise_efficiency": 0.2,
                            "reduction_overhead": 4.0, "weight_reorder_passes": 0.0}, identity)
    target = parse_target(draft, source="calibration draft")
    layers = [_layer(shape) for shape in figures.shapes]
    measured = np.array(figures.latencies_s)

    # timed over and over, a layer whose weights fit the last cache finds them there (warm)
    warm = np.array([weights_stay_on_chip(target, 4 * l.n_weights, 4 * (math.prod(l.in_shape) + math.prod(l.out_shape)))
                     for l in layers])

    def predicted(values: np.ndarray) -> np.ndarray:
        cpu = target.cpu.model_copy(update=dict(zip(FITTED, values.tolist())))
        fitted = target.model_copy(update={"cpu": cpu})
        pairs = [(layer, Option()) for layer in layers]
        cold, hot = (make_cost_model("analytical", fitted, warm=w).price(pairs).latency_s for w in (False, True))
        return np.where(warm, hot, cold)

    solution = least_squares(lambda v: np.log(predicted(v) / measured), [0.8, 0.8, 0.2, 4.0, 0.5],
                             bounds=([0.02, 0.02, 0.005, 0.0, 0.0], [1.0, 1.0, 1.0, 256.0, 8.0]))
    values = {name: float(f"{v:.3g}") for name, v in zip(FITTED, solution.x)}
    errors = predicted(np.array(list(values.values()))) / measured - 1
    if figures.int8_in_chain_s:
        values.update(_fit_int8(parse_target(_yaml(figures, values, identity), source="calibration draft"), figures))
    text = _yaml(figures, values, identity)
    fitted = parse_target(text, source="calibration")
    report = {"fitted": values, "shapes": [list(s) for s in figures.shapes],
              "measured_s": measured.tolist(), "error": errors.tolist(),
              "median_abs_error": float(np.median(np.abs(errors)))}
    return text, fitted, report


def _fit_int8(target: Target, figures: HostFigures) -> dict[str, float]:
    """The int8 path's kernel factor and depthwise share (layers among int8 neighbours), and the
    conversion passes that explain what a lone int8 layer costs more (its edges)."""
    layers = [_layer(shape) for shape in INT8_SHAPES]
    chained = np.array(figures.int8_in_chain_s)
    depthwise = np.array([shape[5] > 1 for shape in INT8_SHAPES])
    path = target.compute_index(8)

    def predicted(values: np.ndarray) -> np.ndarray:
        factor, dw = values.tolist()
        compute = list(target.compute)
        compute[path] = compute[path].model_copy(update={"kernel_efficiency": factor, "depthwise_efficiency": dw})
        model = make_cost_model("analytical", target.model_copy(update={"compute": tuple(compute)}), warm=True)
        return model.price([(layer, Option(bits=8)) for layer in layers]).latency_s

    solution = least_squares(lambda v: np.log(predicted(v) / chained), [0.8, 0.2],
                             bounds=([0.01, 0.005], [1.0, 1.0]))
    factor, dw = (float(f"{v:.3g}") for v in solution.x)
    # float, int8, float, int8 changes width four times (the last on the way out): what it costs beyond its
    # layers among their own kind, per elementwise pass over the activation, is the conversion's passes
    # alternating = 2 int8 + 2 float layers + 4 x passes x (one elementwise pass) + penalty x (2 float layers)
    extra = np.array(figures.alternating_s) - 2 * chained - 2 * np.array(figures.float_in_chain_s)
    one_pass = make_cost_model("analytical", target, warm=True).price(
        [(Layer(f"edge{i}", "elementwise", (), l.out_shape, l.out_shape, compressible=False,
                in_elems=math.prod(l.out_shape)), Option()) for i, l in enumerate(layers)]).latency_s
    design = np.column_stack([4 * one_pass, 2 * np.array(figures.float_in_chain_s)])
    # weighted so that each shape counts alike, whatever its size
    scale = 1 / np.maximum(np.array(figures.alternating_s), 1e-9)
    passes, penalty = nnls(design * scale[:, None], extra * scale)[0]
    del depthwise
    return {"int8_kernel_efficiency": factor, "int8_depthwise_efficiency": dw,
            "conversion_passes": float(f"{passes:.3g}"), "mixed_float_penalty": float(f"{penalty:.3g}")}


def write_target(text: str, path: Path) -> Path:
    """Write the target file atomically (a temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)
    return path


def _layer(shape: tuple):
    from cost_models.microbench import LayerShape

    s = LayerShape(*shape)
    with torch.no_grad():
        return LayerGraph.trace(torch.nn.Sequential(s.module()).eval(), torch.zeros(s.input_shape())).compressible()[0]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _clock_hz() -> float:
    """The nominal clock: every per-cycle figure below is a measured rate divided by it."""
    for path in ("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",):
        try:
            return float(Path(path).read_text()) * 1e3
        except (OSError, ValueError):
            pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1]) * 1e6
    except (OSError, ValueError):
        pass
    return 1e9


def _yaml(f: HostFigures, kernels: dict[str, float], identity: Identity) -> str:
    """The target file, each number with how it was measured."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    how = identity.how
    clock = f.clock_hz
    name = identity.name
    lines = [
        identity.header,
        "# Rates are measured; per-cycle figures are the measured rate divided by the nominal clock below.",
        "# Energies are Horowitz's 45 nm figures (ISSCC 2014), as for the Arm targets: not measured here.",
        f"name: {name}",
        "kind: cpu",
        f"description: {f.cpu_model}, one core, {f.runtime}",
        f"runtime: {f.runtime}",
        f"clock_hz: {clock:.4g}            # measured: nominal clock from sysfs or /proc/cpuinfo ({when})",
        "compute:",
        "  - dtype: fp32",
        "    max_weight_bits: 32     # source: fp32 kernels take weights of any width (dequantised)",
        "    operand_bits: 32        # source: fp32 FMA",
        "    activation_bytes: 4     # source: fp32 activations",
        f"    macs_per_cycle: {f.fp32_macs_per_s / clock:.4g}   # {how}: {f.fp32_macs_per_s / 1e9:.1f} GMAC/s "
        "(the best rate of the single layers below and of a large GEMM)",
        "    pj_per_mac: 4.6         # source: Horowitz, ISSCC 2014, 45 nm: fp32 mult 3.7 + add 0.9 pJ",
    ]
    if f.int8_macs_per_s:
        lines += [
            "  - dtype: int8",
            "    max_weight_bits: 8      # source: onnxruntime QDQ int8 kernels (QLinearConv, QGemm) take int8 weights",
            "    operand_bits: 8         # source: uint8 x int8, the pair onnxruntime's QDQ kernels take (AVX512-VNNI vpdpbusd on x86)",
            "    activation_bytes: 1     # source: uint8 activations in QDQ models",
            f"    macs_per_cycle: {f.int8_macs_per_s / clock:.4g}   # {how}: {f.int8_macs_per_s / 1e9:.1f} GMAC/s "
            "(MatMulInteger 512^3)",
            "    pj_per_mac: 0.3         # source: Horowitz, ISSCC 2014, 45 nm: 8b mult 0.2 + 32b add 0.1 pJ",
        ]
        if "int8_kernel_efficiency" in kernels:
            lines += [
                f"    kernel_efficiency: {kernels['int8_kernel_efficiency']}   # fitted: {how}, int8 layers among "
                "int8 neighbours (chains of one and two)",
                f"    depthwise_efficiency: {kernels['int8_depthwise_efficiency']}  # fitted: as above",
            ]
    lines += ["memory:", *identity.registers]
    energy = {"L1": 1.25, "L2": 2.5, "L3": 12.5}
    for level, size in f.caches:
        lines += [
            f"  - name: {level.lower()}",
            f"    size_bytes: {size}      # measured: sysfs cache size ({when})",
            f"    bandwidth_bytes_per_cycle: {f.bandwidth[level] / clock:.4g}   # "
            + ((f.bandwidth_sources or {}).get(level) or
               f"{how}: {f.bandwidth[level] / 1e9:.1f} GB/s (working-set sweep, one core)"),
            f"    read_pj_per_byte: {energy.get(level, 12.5)}   # source: Horowitz memory table (8 KB / 32 KB / 1 MB SRAM)",
            f"    write_pj_per_byte: {energy.get(level, 12.5)}  # source: as read",
        ]
    lines += [
        "dram:",
        f"  bandwidth_bytes_per_s: {f.bandwidth['DRAM']:.4g}   # {how}: sustained, one core (working sets >= 2x the last cache)",
        "  read_pj_per_byte: 160.0         # source: Horowitz, ISSCC 2014: 640 pJ per 32-bit DRAM read",
        "  write_pj_per_byte: 160.0        # source: as read",
        "weights_move: dense        # source: onnxruntime and torch hold weights as dense fp32 (or int8) tensors",
        f"mixed_float_penalty: {kernels.get('mixed_float_penalty', 0.0)}   # "
        + (f"fitted: {how}, chains alternating float and int8 layers" if "mixed_float_penalty" in kernels
           else "assumption: no int8 path here"),
        f"conversion_passes: {kernels.get('conversion_passes', 1.0)}   # "
        + (f"fitted: {how}, chains alternating float and int8 layers (quantize, layout, dequantize)" if "conversion_passes" in kernels else "assumption: one pass; no int8 path here"),
        f"fuses_activations: {'true' if f.runtime == 'onnxruntime' else 'false'}   # source: "
        + ("onnxruntime folds batch norm into convs and fuses activations" if f.runtime == "onnxruntime" else
           "torch eager runs batch norm and each activation as a kernel of its own"),
        "sparsity:",
        "  skips: none               # source: dense kernels in onnxruntime and torch eager",
        "cpu:",
        identity.register_tile,
        f"  gemm_efficiency: {kernels['gemm_efficiency']}     # fitted: {how}, single layers (cost_models/host.py)",
        f"  conv_efficiency: {kernels['conv_efficiency']}     # fitted: as above",
        f"  depthwise_efficiency: {kernels['depthwise_efficiency']}  # fitted: as above",
        f"  reduction_overhead: {kernels['reduction_overhead']}  # fitted: as above",
        f"  layer_overhead_s: {f.layer_overhead_s:.3g}   # {how}: chains of 1 and 9 tiny convs",
        f"  skips_padding: {str(f.skips_padding).lower()}      # {how}: 3x3 against 1x1 conv, 512 channels on a 1x1 map",
        f"  weight_reorder_passes: {kernels['weight_reorder_passes']}   # fitted: as above (repacking weights on every call)",
    ]
    return "\n".join(lines) + "\n"

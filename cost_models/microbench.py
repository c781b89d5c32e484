"""Micro-benchmarks of this machine, one core: the numbers `hwsearch calibrate host` fits.

Every figure is measured on one thread, as the runtime named delivers it:

    fp32_matmul_macs_per_s()           MAC/s   torch matmul (MKL sgemm)
    fp32_conv_macs_per_s()             MAC/s   torch 3x3 convolution (oneDNN)
    int8_macs_per_s()                  MAC/s   onnxruntime MatMulInteger, uint8 x int8
    cache_sizes()                      bytes   data and unified caches, from sysfs
    bandwidth_curve()                  bytes/s by working-set size (numpy, STREAM "add")
    memory_bandwidth(curve)            bytes/s per cache level and DRAM (plateaus of the curve)
    overhead(runtime)                  seconds per model call and per layer
    layer_latencies(shapes, runtime)   seconds per one-layer model

A MAC is one multiply-accumulate (2 FLOP). The two fp32 figures differ on AMD CPUs:
MKL's sgemm runs its AVX2 kernels there, oneDNN's convolutions AVX-512.
Runtimes: "torch", "onnxruntime" (fp32) and "onnxruntime-int8" (every layer quantized
in QDQ form, as `hwsearch.export.onnx_export.export_onnx` does).
"""
from __future__ import annotations

import math
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import numpy as np
import onnx
import torch
from numpy.lib.stride_tricks import as_strided
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from cost_models.measure import measure_call, measure_onnxruntime, measure_torch
from hwsearch.export import export_onnx

RUNTIMES = ("torch", "onnxruntime", "onnxruntime-int8")
KiB = 1024


# ---- peak compute --------------------------------------------------------------------------------

def fp32_matmul_macs_per_s(*, size: int = 512, min_time_s: float = 0.2) -> float:
    """fp32 MAC/s of one core in a (size x size) @ (size x size) torch matmul.

    512 is on the plateau here: 256 to 1024 all give the same rate within 2%.
    """
    with torch.random.fork_rng():
        torch.manual_seed(0)
        linear = nn.Linear(size, size, bias=False)            # F.linear: one sgemm
        x = torch.randn(size, size)
    seconds = measure_torch(linear, x, threads=1, min_time_s=min_time_s).median_s
    return size ** 3 / seconds


def fp32_conv_macs_per_s(*, channels: int = 128, size: int = 28, min_time_s: float = 0.2) -> float:
    """fp32 MAC/s of one core in a 3x3 convolution (channels -> channels, size x size, batch 1)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False).eval()
        x = torch.randn(1, channels, size, size)
    seconds = measure_torch(conv, x, threads=1, min_time_s=min_time_s).median_s
    return channels * channels * 9 * size * size / seconds


def int8_macs_per_s(*, size: int = 512, min_time_s: float = 0.2) -> float:
    """int8 MAC/s of one core in onnxruntime: MatMulInteger, uint8 (size x size) @ int8 (size x size).

    uint8 x int8 is the pair onnxruntime's x86 kernels (AVX512-VNNI `vpdpbusd`) are built
    for; with int8 x int8 MatMulInteger falls back to a kernel 20x slower here.
    """
    model = matmul_integer_model(size)
    a = np.random.default_rng(1).integers(0, 256, (size, size), dtype=np.uint8)
    seconds = measure_onnxruntime(model.SerializeToString(), a, threads=1, min_time_s=min_time_s).median_s
    return size ** 3 / seconds


def matmul_integer_model(size: int = 512) -> onnx.ModelProto:
    """uint8 input (size x size) @ a fixed int8 weight (size x size) -> int32: `int8_macs_per_s`'s model."""
    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, (size, size), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "matmul_integer",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [size, size])],
        [numpy_helper.from_array(weight, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


# ---- memory --------------------------------------------------------------------------------------

def cache_sizes(cpu: int = 0) -> list[tuple[str, int]]:
    """[("L1", bytes), ("L2", bytes), ...]: the data and unified caches of `cpu`, from sysfs."""
    root = Path(f"/sys/devices/system/cpu/cpu{cpu}/cache")
    caches = {}
    for index in sorted(root.glob("index*")):
        if (index / "type").read_text().strip() in ("Data", "Unified"):
            level = int((index / "level").read_text())
            caches[level] = _parse_size((index / "size").read_text().strip())
    if not caches:
        raise RuntimeError(f"no cache sizes under {root}: cache_sizes reads Linux sysfs; "
                           "give the sizes in the target file instead")
    return [(f"L{level}", size) for level, size in sorted(caches.items())]


def _parse_size(text: str) -> int:
    units = {"K": KiB, "M": KiB ** 2, "G": KiB ** 3}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def bandwidth_curve(*, min_bytes: int = 16 * KiB, max_bytes: int | None = None, points_per_octave: int = 2,
                    min_time_s: float = 0.02) -> list[tuple[int, float]]:
    """[(working-set bytes, bytes/s)] of a STREAM "add" kernel on one core, numpy.

    The kernel adds a buffer into an accumulator of the same size, `rows` times per call
    (np.add.reduce over a stride-0 view of the buffer), so that one call does megabytes
    of work even when the working set (buffer + accumulator) fits in L1: numpy's call
    overhead (about 1 us) would otherwise be the measurement. Traffic counted: the first
    row copies (read + write), each further row reads both arrays and writes one.
    Working sets run from `min_bytes` to `max_bytes` (default: 4x the last cache level).
    At L1 and L2 sizes the figure is what numpy's add loop sustains, below the cores'
    load/store limits.
    """
    if max_bytes is None:
        max_bytes = 4 * cache_sizes()[-1][1]
    octaves = math.log2(max_bytes / min_bytes)
    sizes = sorted({int(min_bytes * 2 ** (i / points_per_octave)) // 64 * 64
                    for i in range(int(octaves * points_per_octave) + 1)})
    rng = np.random.default_rng(0)
    curve = []
    for working_set in sizes:
        n = working_set // 8                                             # float32 elements per array
        buffer = rng.random(n, dtype=np.float32)
        out = np.zeros(n, dtype=np.float32)
        rows = max(2, math.ceil(8 * KiB ** 2 / (12 * n)))               # >= 8 MiB of traffic per call
        view = as_strided(buffer, shape=(rows, n), strides=(0, buffer.itemsize), writeable=False)
        traffic = (8 + 12 * (rows - 1)) * n
        m = measure_call(lambda: np.add.reduce(view, axis=0, out=out), runtime="numpy",
                         warmup=1, repeats=3, min_time_s=min_time_s)
        curve.append((working_set, traffic / m.median_s))
    return curve


def memory_bandwidth(curve: list[tuple[int, float]], caches: list[tuple[str, int]] | None = None) -> dict[str, float]:
    """Sustained bytes/s per level: {"L1": ..., "L2": ..., "L3": ..., "DRAM": ...}.

    A level's figure is the median of the curve's points whose working set is larger than
    the level below and at most half the level (so that it fits with room to spare);
    DRAM's, of the points at least twice the last level.
    """
    caches = cache_sizes() if caches is None else caches
    levels = {}
    below = 0
    for name, size in caches:
        levels[name] = _plateau(curve, below + 1, size // 2, name)
        below = size
    levels["DRAM"] = _plateau(curve, 2 * below, math.inf, "DRAM")
    return levels


def _plateau(curve: list[tuple[int, float]], lowest: float, highest: float, name: str) -> float:
    points = [rate for size, rate in curve if lowest <= size <= highest]
    if not points:
        raise ValueError(f"the bandwidth curve has no working set from {lowest:,} to {highest:,} bytes "
                         f"for {name}: measure it from smaller or up to larger sizes")
    return median(points)


# ---- fixed costs and single layers ---------------------------------------------------------------

@dataclass(frozen=True)
class Overhead:
    """Fixed costs of a runtime, seconds: a model of L tiny layers takes call_s + L * layer_s."""
    call_s: float        # entering the runtime, input and output handling
    layer_s: float       # each further layer, beyond its arithmetic
    runtime: str


def overhead(runtime: str, *, layers: int = 9, min_time_s: float = 0.3) -> Overhead:
    """Fixed costs from chains of 1 and `layers` tiny convs (8 -> 8 channels, 1x1, on 4x4).

    A tiny conv is 1,024 MACs, nanoseconds of arithmetic, so its latency is the
    runtime's; the slope between the two chains is the per-layer part.
    """
    tiny = LayerShape("conv", 8, 8, size=4)
    one, many = (_chain_latency(tiny, count, runtime, min_time_s) for count in (1, layers))
    layer_s = (many - one) / (layers - 1)
    return Overhead(call_s=one - layer_s, layer_s=layer_s, runtime=runtime)


@dataclass(frozen=True)
class LayerShape:
    """One conv or linear layer at batch 1. Convs pad by kernel // 2 (size kept at stride 1)."""
    kind: str                 # "conv" or "linear"
    in_channels: int          # linear: in_features
    out_channels: int         # linear: out_features
    kernel: int = 1           # square; conv only
    stride: int = 1           # conv only
    groups: int = 1           # conv only; groups == in_channels is depthwise
    size: int = 1             # conv input height = width

    def __post_init__(self):
        if self.kind not in ("conv", "linear"):
            raise ValueError(f"kind must be 'conv' or 'linear', got {self.kind!r}")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"channels must be divisible by groups, got {self.in_channels} -> "
                             f"{self.out_channels} in {self.groups} groups")
        if self.kind == "linear" and (self.kernel, self.stride, self.groups, self.size) != (1, 1, 1, 1):
            raise ValueError("a linear layer takes no kernel, stride, groups or size")

    @property
    def out_size(self) -> int:
        return (self.size + 2 * (self.kernel // 2) - self.kernel) // self.stride + 1

    @property
    def macs(self) -> int:
        per_output = self.in_channels // self.groups * self.kernel ** 2
        return self.out_channels * self.out_size ** 2 * per_output

    def module(self) -> nn.Module:
        if self.kind == "linear":
            return nn.Linear(self.in_channels, self.out_channels)
        return nn.Conv2d(self.in_channels, self.out_channels, self.kernel, self.stride, self.kernel // 2,
                         groups=self.groups)

    def input_shape(self) -> tuple[int, ...]:
        return (1, self.in_channels) if self.kind == "linear" else (1, self.in_channels, self.size, self.size)


def layer_latencies(shapes: list[LayerShape], runtime: str, *, min_time_s: float = 0.2) -> list[float]:
    """Median latency (seconds) of a one-layer model per shape, on one thread.

    The onnxruntime figures include the runtime's fixed costs (see `overhead`); the int8
    ones also the conversions at the layer's edges (quantize the input, NCHW <-> NHWC
    transposes, dequantize the output), which consecutive int8 layers share.
    """
    return [_chain_latency(shape, 1, runtime, min_time_s) for shape in shapes]


def _chain_latency(shape: LayerShape, count: int, runtime: str, min_time_s: float,
                   int8_every: int = 1) -> float:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "torch":
        model, x, _ = chain_model(shape, count)
        return measure_torch(model, x, threads=1, min_time_s=min_time_s).median_s
    with tempfile.TemporaryDirectory(prefix="hwsearch-microbench-") as tmp:
        path = chain_onnx(shape, count, runtime, Path(tmp) / "layer.onnx", int8_every)
        _, x, _ = chain_model(shape, count)
        return measure_onnxruntime(path, x, threads=1, min_time_s=min_time_s).median_s


def chain_model(shape: LayerShape, count: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """`count` such layers, each followed by a ReLU (as in real networks: runtimes fuse it, or not, into the
    layer), with fixed weights; an input, and four calibration inputs for int8 export."""
    if count > 1 and shape.in_channels != shape.out_channels:
        raise ValueError("a chain of layers needs in_channels == out_channels")
    with torch.random.fork_rng():                       # fixed weights, and the caller's RNG untouched
        torch.manual_seed(0)
        modules = [(f"{kind}{i}", module) for i in range(count)
                   for kind, module in (("layer", shape.module()), ("relu", nn.ReLU()))]
        model = nn.Sequential(OrderedDict(modules)).eval()
        x = torch.randn(shape.input_shape())
        calibration = torch.randn(4, *shape.input_shape()[1:])
    return model, x, calibration


def chain_onnx(shape: LayerShape, count: int, runtime: str, path: Path, int8_every: int = 1) -> Path:
    """The chain of `chain_model` as the ONNX file onnxruntime times: fp32 ("onnxruntime"), or with every
    `int8_every`-th layer int8 in QDQ form ("onnxruntime-int8")."""
    if runtime not in ("onnxruntime", "onnxruntime-int8"):
        raise ValueError(f"runtime must be onnxruntime or onnxruntime-int8, got {runtime!r}")
    model, x, calibration = chain_model(shape, count)
    layers = [name for name, _ in model.named_children() if name.startswith("layer")]
    int8_layers = ({name for i, name in enumerate(layers) if i % int8_every == int8_every - 1}
                   if runtime == "onnxruntime-int8" else None)
    return export_onnx(model, x, path, int8_layers=int8_layers, calibration=calibration)


def in_chain(shapes: list[LayerShape], runtime: str, *, min_time_s: float = 0.2) -> list[tuple[float, float]]:
    """(one layer alone, one more layer in a chain of such layers), seconds, per shape.

    The second figure is the slope between chains of one and two: the layer among
    neighbours of its own kind, without the conversions at the model's edges (for int8:
    quantize, layout changes, dequantize); the difference to the first is those edges
    plus the runtime's call cost. Shapes need in_channels == out_channels and stride 1.
    """
    out = []
    for shape in shapes:
        one, two = (_chain_latency(shape, count, runtime, min_time_s) for count in (1, 2))
        out.append((one, two - one))
    return out


def alternating(shapes: list[LayerShape], *, count: int = 4, min_time_s: float = 0.2) -> list[float]:
    """Seconds per shape of a chain of `count` such layers alternating float and int8 (onnxruntime):
    every layer changes the activation's width (and the kernels' layout) on its way in."""
    return [_chain_latency(shape, count, "onnxruntime-int8", min_time_s, int8_every=2) for shape in shapes]

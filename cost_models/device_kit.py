"""Calibration from the user's own device: the micro-benchmarks as ONNX files, and the fit of their timings.

In the spirit of nn-Meter (Zhang et al., MobiSys 2021), whose latency predictors are fitted
on kernels measured on the device itself:

    hwsearch calibrate --device-export kit/          # writes kit/: ONNX files, manifest.json, run.py
    (on the phone or board)  python3 run.py          # onnxruntime, one core -> results.csv
    hwsearch calibrate cortex-a76 --measurements results.csv --name my-phone   # -> my-phone.yaml

The kit holds the same kernels `hwsearch calibrate host` times here (`cost_models/host.py`):
chains of tiny convs for the fixed costs, the 24 single layers the kernel efficiencies are
fitted on, the padding probe, the peak fp32 and int8 rates, the int8 chains and alternating
float/int8 chains, plus chains of elementwise adds over working sets from 16 KiB to 128 MiB
for the bandwidth of each cache level and of DRAM. The runner (`device_runner.py`, copied as
run.py) needs onnxruntime and nothing of hwsearch. The import turns the timings into the
figures `calibrate host` measures and fits them the same way (`host.build_target`); the
base target gives what timings cannot: the register file and micro-kernel tile, and the cache
sizes and clock where the device's sysfs does not show them. The written file names every
figure's source and lists the fit's residuals per layer in its comments.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from cost_models import microbench as mb
from cost_models.host import INT8_SHAPES, SHAPES, HostFigures, Identity, build_target
from cost_models.target import Target
from hwsearch.errors import TargetError

KIT_VERSION = 1
RUNNER = Path(__file__).resolve().with_name("device_runner.py")
TINY = mb.LayerShape("conv", 8, 8, size=4)                     # `microbench.overhead`'s probe
PEAK_FP32 = mb.LayerShape("conv", 256, 256, 1, 1, 1, 56)       # `host.measure`'s large pointwise conv
PADDING = (mb.LayerShape("conv", 512, 512, 1, 1, 1, 1), mb.LayerShape("conv", 512, 512, 3, 1, 1, 1))
INT8_PEAK = 512                                                  # MatMulInteger size
CALLS = 9                                                        # layers in the long tiny chain
STREAM_SIZES = [int(16 * 1024 * 2 ** (i / 2)) // 64 * 64 for i in range(27)]   # 16 KiB .. 128 MiB
STREAM_BYTES_PER_ELEMENT = 16          # working set per element: inputs a and b, and two alternating results
MiB = 1024 ** 2


@dataclass(frozen=True)
class Kernel:
    """One ONNX file of the kit: what it times."""
    id: str
    shape: mb.LayerShape | None = None
    count: int = 1
    runtime: str = "onnxruntime"
    int8_every: int = 1
    stream_bytes: int = 0                # an elementwise add chain over this working set
    probe: bool = False                  # the add chain on a tiny array: each add node's fixed cost

    @property
    def file(self) -> str:
        return f"{self.id}.onnx"

    @property
    def adds(self) -> int:
        """Add nodes in a stream chain: at least 8 MiB of traffic a call, at most 64 nodes."""
        n = self.stream_bytes // STREAM_BYTES_PER_ELEMENT
        return min(64, max(2, math.ceil(8 * MiB / (12 * n))))


def kernels() -> list[Kernel]:
    """Every kernel of the kit, in the order the runner times them."""
    out = [Kernel("call-1", TINY), Kernel(f"call-{CALLS}", TINY, CALLS),
           Kernel("pad-1x1", PADDING[0]), Kernel("pad-3x3", PADDING[1]), Kernel("peak-fp32", PEAK_FP32),
           Kernel("peak-int8")]
    out += [Kernel(f"layer-{i:02d}", mb.LayerShape(*shape)) for i, shape in enumerate(SHAPES)]
    for i, shape in enumerate(INT8_SHAPES):
        square = mb.LayerShape(*shape)
        out += [Kernel(f"int8-1-{i:02d}", square, 1, "onnxruntime-int8"),
                Kernel(f"int8-2-{i:02d}", square, 2, "onnxruntime-int8"),
                Kernel(f"fp32-1-{i:02d}", square, 1), Kernel(f"fp32-2-{i:02d}", square, 2),
                Kernel(f"mixed-{i:02d}", square, 4, "onnxruntime-int8", int8_every=2)]
    out += [Kernel("stream-node", stream_bytes=256, probe=True)]
    out += [Kernel(f"stream-{size}", stream_bytes=size) for size in STREAM_SIZES]
    return out


def export_kit(folder: Path, progress=None) -> Path:
    """Write the kit into `folder` (created; must be empty or absent): the ONNX files, manifest.json, run.py."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise TargetError(f"--device-export {folder} exists and is not an empty folder: give a new folder")
    if any(parent.exists() and not parent.is_dir() for parent in folder.parents):
        raise TargetError(f"--device-export {folder}: {next(p for p in folder.parents if p.exists())} is a file, "
                          "not a folder: give a folder path")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    listed = kernels()
    task = progress.add_task("writing the calibration kit", total=len(listed)) if progress else None
    entries = []
    for kernel in listed:
        entries.append({"id": kernel.id, "file": kernel.file, "inputs": _write(kernel, partial / kernel.file)})
        if progress:
            progress.advance(task)
    manifest = {"version": KIT_VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "runtime": f"onnxruntime {_ort_version()} (exported with; any recent version runs them)",
                "threads": 1, "kernels": entries}
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.copyfile(RUNNER, partial / "run.py")
    if folder.exists():
        folder.rmdir()
    partial.rename(folder)
    if progress:
        progress.remove_task(task)
    return folder


def _write(kernel: Kernel, path: Path) -> list[dict]:
    """Write one kernel's ONNX file; its inputs as the runner feeds them."""
    if kernel.id == "peak-int8":
        onnx.save(mb.matmul_integer_model(INT8_PEAK), path)
        return [{"name": "a", "shape": [INT8_PEAK, INT8_PEAK], "dtype": "uint8"}]
    if kernel.stream_bytes:
        n = kernel.stream_bytes // STREAM_BYTES_PER_ELEMENT
        nodes = [helper.make_node("Add", ["a" if i == 0 else f"t{i - 1}", "b"], [f"t{i}"]) for i in range(kernel.adds)]
        nodes[-1].output[0] = "y"
        graph = helper.make_graph(nodes, "stream", [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n])
                                                    for x in ("a", "b")],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        onnx.checker.check_model(model)
        onnx.save(model, path)
        return [{"name": "a", "shape": [n], "dtype": "float32"}, {"name": "b", "shape": [n], "dtype": "float32"}]
    mb.chain_onnx(kernel.shape, kernel.count, kernel.runtime, path, kernel.int8_every)
    name = onnx.load(path, load_external_data=False).graph.input[0].name
    return [{"name": name, "shape": list(kernel.shape.input_shape()), "dtype": "float32"}]


def _ort_version() -> str:
    import onnxruntime
    return onnxruntime.__version__


@dataclass(frozen=True)
class Measurements:
    """A runner's CSV: the device's description (`# key: value` lines) and each kernel's median seconds."""
    info: dict[str, str]
    seconds: dict[str, float]
    source: str

    def __getitem__(self, kernel_id: str) -> float:
        return self.seconds[kernel_id]


def read_measurements(path: Path) -> Measurements:
    """The runner's CSV, checked: the kit's version, every kernel timed, every time a positive number."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"--measurements {path} cannot be read ({type(exc).__name__}): give the results.csv "
                          "that run.py wrote") from None
    info = {}
    for line in lines:
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            info[key.strip()] = value.strip()
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    if not rows or "id" not in rows[0] or "median_s" not in rows[0]:
        raise TargetError(f"--measurements {path} has no id and median_s columns: give the results.csv that run.py "
                          "wrote")
    if info.get("kit") != str(KIT_VERSION):
        raise TargetError(f"--measurements {path} comes from calibration kit version {info.get('kit', 'unknown')}, "
                          f"this hwsearch reads version {KIT_VERSION}: export the kit again and rerun run.py")
    seconds = {}
    for row in rows:
        try:
            value = float(row["median_s"])
        except (TypeError, ValueError):
            value = float("nan")
        if not (value > 0 and math.isfinite(value)):
            raise TargetError(f"--measurements {path}: kernel {row['id']} has median_s {row['median_s']!r}, not a "
                              "positive number of seconds: rerun run.py")
        seconds[row["id"]] = value
    missing = [k.id for k in kernels() if k.id not in seconds]
    if missing:
        raise TargetError(f"--measurements {path} lacks {len(missing)} of the kit's kernels ({', '.join(missing[:3])}"
                          f"{', ...' if len(missing) > 3 else ''}): let run.py finish, then copy its results.csv")
    return Measurements(info, seconds, path.name)


def figures(measured: Measurements, base: Target) -> HostFigures:
    """The figures `calibrate host` measures, from the device's timings; caches and clock from the device's
    sysfs (in the CSV's header) or, where it did not show them, from `base`."""
    one, many = measured["call-1"], measured[f"call-{CALLS}"]
    layer_s = max(0.0, (many - one) / (CALLS - 1))
    call_s = max(0.0, one - layer_s)
    caches = _caches(measured.info.get("caches"), base)
    clock = float(measured.info.get("clock_hz") or base.clock_hz)
    shapes = [mb.LayerShape(*shape) for shape in SHAPES]
    latencies = [max(measured[f"layer-{i:02d}"] - call_s, 1e-9) for i in range(len(SHAPES))]
    fp32 = max([PEAK_FP32.macs / measured["peak-fp32"]] + [s.macs / t for s, t in zip(shapes, latencies)])
    int8 = INT8_PEAK ** 3 / measured["peak-int8"]
    skips_padding = measured["pad-3x3"] - call_s < 3 * (measured["pad-1x1"] - call_s)
    count = range(len(INT8_SHAPES))
    alone = [measured[f"int8-1-{i:02d}"] - call_s for i in count]
    chained = [max(measured[f"int8-2-{i:02d}"] - measured[f"int8-1-{i:02d}"], 1e-9) for i in count]
    float_chained = [max(measured[f"fp32-2-{i:02d}"] - measured[f"fp32-1-{i:02d}"], 1e-9) for i in count]
    mixed = [measured[f"mixed-{i:02d}"] - call_s for i in count]
    bandwidth, sources = _bandwidth(measured, call_s, caches, base, clock)
    return HostFigures("onnxruntime", measured.info.get("cpu_model", "unknown CPU"), clock, caches, bandwidth,
                       fp32, int8, layer_s, skips_padding, SHAPES, latencies, alone, chained, float_chained, mixed,
                       call_s, sources)


def _bandwidth(measured: Measurements, call_s: float, caches, base: Target, clock: float):
    """Bytes/s per cache level and DRAM from the add chains, each node's fixed cost taken off; and, for a level
    whose working sets are too small for that to leave a measurement (a node moves its bytes in under 4x its fixed
    cost, as in L1 here), the base target's figure at the device's clock instead, said so in the file."""
    probe = next(k for k in kernels() if k.probe)
    node_s = max(0.0, (measured[probe.id] - call_s) / probe.adds)
    curve, moved = [], {}
    for kernel in kernels():
        if kernel.stream_bytes and not kernel.probe:
            n = kernel.stream_bytes // STREAM_BYTES_PER_ELEMENT
            per_node = max((measured[kernel.id] - call_s) / kernel.adds - node_s, 1e-12)
            curve.append((kernel.stream_bytes, 12 * n / per_node))
            moved[kernel.stream_bytes] = per_node
    try:
        bandwidth = mb.memory_bandwidth(curve, caches)
    except ValueError as exc:
        raise TargetError(f"--measurements {measured.source}: {exc}") from None
    levels = [m for m in base.memory if m.name.lower() != "registers"]
    sources, below = {}, 0
    for i, (name, size) in enumerate(caches):
        inside = [moved[b] for b in moved if below < b <= size // 2]
        if i < len(levels) and (not inside or max(inside) < 4 * node_s):
            bandwidth[name] = levels[i].bandwidth_bytes_per_cycle * clock
            sources[name] = (f"from target {base.name}'s {levels[i].name} "
                             f"({levels[i].bandwidth_bytes_per_cycle:g} B/cycle): add chains this small are "
                             f"dominated by each node's {node_s * 1e9:.0f} ns")
        below = size
    return bandwidth, sources


def _caches(text: str | None, base: Target) -> list[tuple[str, int]]:
    if text:
        try:
            found = [(level.strip().upper(), mb._parse_size(size.strip()))
                     for level, _, size in (item.partition("=") for item in text.split(","))]
            if found and all(level.startswith("L") and size > 0 for level, size in found):
                return sorted(found)
        except (ValueError, KeyError):
            pass
    levels = [m for m in base.memory if m.name.lower() != "registers"]
    return [(f"L{i}", m.capacity_bytes) for i, m in enumerate(levels, start=1)]


def check_base(base: Target) -> None:
    """Device timings fit a CPU target: refuse any other as the base, in one line."""
    if base.kind != "cpu" or base.cpu is None:
        raise TargetError(f"target {base.name} is not a CPU ({base.kind}): calibration from device timings fits CPU "
                          "targets; start from one such as cortex-a76, cortex-a55 or host")


def calibrated_target(base: Target, measured: Measurements, name: str) -> tuple[str, Target, dict]:
    """The target file fitted to the device's timings (`host.build_target`), with the fit's residuals per layer
    in its closing comments; the parsed target; the fit report."""
    check_base(base)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    how = f"measured on the device: hwsearch calibrate {base.name} --measurements {measured.source}, {when}"
    registers = [m for m in base.memory if m.name.lower() == "registers"]
    register_lines = (("  - name: registers",
                       f"    size_bytes: {registers[0].size_bytes}   # from target {base.name}",
                       f"    bandwidth_bytes_per_cycle: {registers[0].bandwidth_bytes_per_cycle:g}   # from target "
                       f"{base.name}",
                       "    read_pj_per_byte: 0.0   # assumption: register reads are part of the per-MAC energy",
                       "    write_pj_per_byte: 0.0  # assumption: as above") if registers else ())
    tile = base.cpu.register_tile
    identity = Identity(name, f"# {measured.info.get('cpu_model', 'a device')}, one core, batch 1, as onnxruntime "
                              f"{measured.info.get('onnxruntime', '')} runs it there: written by `hwsearch calibrate "
                              f"{base.name} --measurements {measured.source}` from the calibration kit's timings.",
                        how, register_lines,
                        f"  register_tile: [{tile[0]}, {tile[1]}]    # from target {base.name}: its micro-kernel")
    text, target, report = build_target(figures(measured, base), identity)
    lines = [f"# Fit residuals, predicted / measured - 1, on the {len(report['error'])} single layers "
             f"(median {report['median_abs_error']:.1%}):"]
    for shape, measured_s, error in zip(report["shapes"], report["measured_s"], report["error"]):
        s = mb.LayerShape(*shape)
        what = (f"linear {s.in_channels}->{s.out_channels}" if s.kind == "linear" else
                f"conv {s.in_channels}->{s.out_channels} {s.kernel}x{s.kernel} s{s.stride}"
                f"{' dw' if s.groups > 1 else ''} @{s.size}")
        lines.append(f"#   {what}: measured {measured_s * 1e6:.1f} us, {error:+.1%}")
    return text + "\n".join(lines) + "\n", target, report

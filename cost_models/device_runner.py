#!/usr/bin/env python3
"""Time hwsearch's calibration kernels on this device, one core, with onnxruntime.

    python3 run.py                     # writes results.csv beside this file
    python3 run.py --out /sdcard/results.csv --min-time 0.2

Needs Python 3.8+ and onnxruntime (`pip install onnxruntime`, which brings numpy); nothing
else. Reads manifest.json beside this file, times every ONNX file it lists on one thread
(three warm-up calls, then calls until --min-time seconds have passed and at least five were
timed; the median is the figure), and writes one CSV row per file, after `# key: value`
lines describing the device (CPU, caches and clock from Linux sysfs where readable). Copy
the CSV back and run `hwsearch calibrate TARGET --measurements results.csv`.

Pin it to the core you deploy on for steady figures: `taskset 80 python3 run.py` (the
eighth core, a big core on many phones) on Linux and Android.

This file is copied out by `hwsearch calibrate --device-export DIR` and imports nothing of
hwsearch, so that it runs where hwsearch is not installed.
"""
import argparse
import csv
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def device_info():
    """What the CSV's header says about this device: CPU model, caches and clock of cpu0 (sysfs)."""
    info = {"machine": platform.machine(), "system": platform.system(), "python": platform.python_version()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                info.setdefault("cpu_model", value.strip())
    except OSError:
        pass
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    caches = {}
    try:
        for index in sorted(root.glob("index*")):
            if (index / "type").read_text().strip() in ("Data", "Unified"):
                caches["L" + (index / "level").read_text().strip()] = (index / "size").read_text().strip()
    except OSError:
        pass
    if caches:
        info["caches"] = ",".join(f"{level}={size}" for level, size in sorted(caches.items()))
    try:
        info["clock_hz"] = str(int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) * 1000)
    except (OSError, ValueError):
        try:                                # no cpufreq (virtual machines): the clock /proc/cpuinfo reports
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("cpu MHz"):
                    info["clock_hz"] = str(int(float(line.split(":", 1)[1]) * 1e6))
                    break
        except (OSError, ValueError):
            pass
    return info


def time_calls(call, min_time_s, warmup=3, repeats=5):
    """(median, p10, p90, calls) of `call`: the method of cost_models.measure.measure_call, written again here
    because this file runs where hwsearch is not installed."""
    for _ in range(warmup):
        call()
    times = []
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        while len(times) < repeats or time.perf_counter() - start < min_time_s:
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
    finally:
        if was_enabled:
            gc.enable()
    times.sort()
    return statistics.median(times), times[len(times) // 10], times[(9 * len(times)) // 10], len(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Time hwsearch's calibration kernels on this device.")
    parser.add_argument("--out", default=str(HERE / "results.csv"), help="CSV to write (default results.csv here)")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds of timed calls per kernel (default 0.2)")
    args = parser.parse_args(argv)
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as exc:
        sys.exit(f"run.py: {exc.name} is missing: pip install onnxruntime (it brings numpy)")
    manifest = json.loads((HERE / "manifest.json").read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    rng = np.random.default_rng(0)
    rows = []
    kernels = manifest["kernels"]
    for number, kernel in enumerate(kernels, start=1):
        session = ort.InferenceSession(str(HERE / kernel["file"]), options, providers=["CPUExecutionProvider"])
        feed = {}
        for spec in kernel["inputs"]:
            if spec["dtype"] == "uint8":
                feed[spec["name"]] = rng.integers(0, 256, spec["shape"], dtype=np.uint8)
            else:
                feed[spec["name"]] = rng.standard_normal(spec["shape"], dtype=np.float32)
        median, p10, p90, repeats = time_calls(lambda: session.run(None, feed), args.min_time)
        rows.append((kernel["id"], kernel["file"], f"{median:.6e}", f"{p10:.6e}", f"{p90:.6e}", repeats))
        print(f"[{number}/{len(kernels)}] {kernel['id']}: {median * 1e6:.1f} us", flush=True)
        del session
    info = {"kit": str(manifest["version"]), "onnxruntime": ort.__version__, **device_info()}
    out = Path(args.out)
    partial = out.with_name(out.name + ".partial")
    with partial.open("w", newline="") as f:
        for key, value in info.items():
            f.write(f"# {key}: {value}\n")
        writer = csv.writer(f)
        writer.writerow(["id", "file", "median_s", "p10_s", "p90_s", "repeats"])
        writer.writerows(rows)
    os.replace(partial, out)
    print(f"wrote {out}: {len(rows)} kernels; copy it back and run hwsearch calibrate TARGET --measurements {out.name}")


if __name__ == "__main__":
    main()

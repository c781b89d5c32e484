"""Calibration from a device's own timings, checked on this machine against `hwsearch calibrate host`.

    python benchmarks/device_calibration.py      # writes results/benchmarks/device_calibration.{md,json}

This machine stands in for the user's phone: the calibration kit is exported
(`hwsearch calibrate --device-export`), its run.py times it in a separate interpreter that
cannot import hwsearch, and `hwsearch calibrate host --measurements results.csv` fits a target
from the CSV alone. The same machine is also calibrated the usual way (`calibrate host`,
micro-benchmarks in process). Both targets' figures are listed side by side, and both predict
the same whole-model variants timed with onnxruntime (`cost_models.validate.validate_host`: 4
models, 9 variants each, some layers low-rank, some int8). One thread; run it on a quiet machine.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.progress import Progress  # noqa: E402

from cost_models import device_kit  # noqa: E402
from cost_models.host import build_target, measure  # noqa: E402
from cost_models.target import load_target  # noqa: E402
from cost_models.validate import validate_host  # noqa: E402

OUT = ROOT / "results" / "benchmarks"


def figures_of(target) -> dict:
    cpu = target.cpu
    levels = {m.name: m.bandwidth_bytes_per_cycle * target.clock_hz / 1e9 for m in target.memory if m.name != "registers"}
    return {"fp32 GMAC/s": target.compute[0].macs_per_cycle * target.clock_hz / 1e9,
            "int8 GMAC/s": target.compute[1].macs_per_cycle * target.clock_hz / 1e9 if len(target.compute) > 1 else None,
            **{f"{name} GB/s": value for name, value in levels.items()},
            "DRAM GB/s": target.dram.bandwidth_bytes_per_s / 1e9, "layer overhead us": cpu.layer_overhead_s * 1e6,
            "gemm_efficiency": cpu.gemm_efficiency, "conv_efficiency": cpu.conv_efficiency,
            "depthwise_efficiency": cpu.depthwise_efficiency, "reduction_overhead": cpu.reduction_overhead,
            "weight_reorder_passes": cpu.weight_reorder_passes, "skips_padding": cpu.skips_padding,
            "int8 kernel_efficiency": target.compute[1].kernel_efficiency if len(target.compute) > 1 else None,
            "conversion_passes": target.conversion_passes, "mixed_float_penalty": target.mixed_float_penalty}


def main() -> None:
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="hwsearch-kit-") as tmp, Progress(transient=True) as progress:
        folder = device_kit.export_kit(Path(tmp) / "kit", progress)
        print("kit exported; timing it with run.py ...", flush=True)
        done = subprocess.run([sys.executable, "-I", "run.py"], cwd=folder, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"run.py failed: {done.stderr.strip().splitlines()[-1:]}")
        measured = device_kit.read_measurements(folder / "results.csv")
        _, kit_target, kit_report = device_kit.calibrated_target(load_target("host"), measured, "host-kit")
        print("calibrating host in process ...", flush=True)
        _, host_target, host_report = build_target(measure("onnxruntime", progress))
        checks = {}
        for label, target in (("calibrate host", host_target), ("device kit", kit_target)):
            print(f"whole models against {label} ...", flush=True)
            checks[label] = validate_host(target, progress=progress)
    rows = {"calibrate host": figures_of(host_target), "device kit": figures_of(kit_target)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "device_calibration.json").write_text(json.dumps(
        {"created": stamp, "device": measured.info, "figures": rows,
         "single_layer_median_error": {"calibrate host": host_report["median_abs_error"],
                                       "device kit": kit_report["median_abs_error"]},
         "whole_models": {k: {"agreement": v["agreement"], "by_kind": v["by_kind"]} for k, v in checks.items()}},
        indent=1))
    lines = ["# Calibration from a device's own timings, on this machine", "",
             f"`python benchmarks/device_calibration.py`, {stamp}; {measured.info.get('cpu_model')}, onnxruntime "
             f"{measured.info.get('onnxruntime')}, one thread. The device kit's target is fitted from run.py's CSV "
             "alone (run in an interpreter that cannot import hwsearch); `calibrate host` measures in process.", "",
             "| figure | calibrate host | device kit |", "|---|---|---|"]
    for key in rows["calibrate host"]:
        a, b = rows["calibrate host"][key], rows["device kit"].get(key)
        lines.append(f"| {key} | {_fmt(a)} | {_fmt(b)} |")
    lines += ["", "| fit and check | calibrate host | device kit |", "|---|---|---|",
              f"| single layers fitted on: median error | {host_report['median_abs_error']:.1%} | "
              f"{kit_report['median_abs_error']:.1%} |"]
    for kind in ("float layers only", "every layer int8", "int8 and float mixed"):
        cells = []
        for label in ("calibrate host", "device kit"):
            a = checks[label]["by_kind"].get(kind)
            cells.append(f"Spearman {a['spearman']:.3f}, median error {a['median_abs_error']:.1%}" if a else "")
        lines.append(f"| whole models, {kind} | {cells[0]} | {cells[1]} |")
    a, b = (checks[label]["agreement"] for label in ("calibrate host", "device kit"))
    lines.append(f"| whole models, all {len(checks['device kit']['rows'])} variants | Spearman {a['spearman']:.3f}, "
                 f"median error {a['median_abs_error']:.1%} | Spearman {b['spearman']:.3f}, median error "
                 f"{b['median_abs_error']:.1%} |")
    (OUT / "device_calibration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:.3g}"


if __name__ == "__main__":
    main()

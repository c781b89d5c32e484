"""Predicted against measured latency on this machine, for the host targets (onnxruntime and torch).

    python benchmarks/host_fidelity.py        # writes results/benchmarks/host_fidelity.{json,md,png}

Calibrates both host targets first (`hwsearch calibrate host`, micro-benchmarks only, into a temporary
folder, leaving targets/ as it is), then times 9 variants of each of 4 models per runtime: the
uncompressed model, and random plans with some layers low-rank and (onnxruntime) some int8. One thread.
Run it on a quiet machine: other processes on the same cores change the measurements.
"""
from __future__ import annotations

import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.progress import Progress  # noqa: E402

from cost_models.host import build_target, measure, write_target  # noqa: E402
from cost_models import load_target  # noqa: E402
from cost_models.validate import validate_host  # noqa: E402

OUT = ROOT / "results" / "benchmarks"


def main() -> None:
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "runtimes": {}}
    lines = ["# Host latency: predicted against measured", "",
             "Each runtime's target calibrated by micro-benchmarks only, then whole models timed (one thread).", "",
             "| runtime | variants | Spearman | median error | float only | every layer int8 | int8 and float mixed |",
             "|---|---|---|---|---|---|---|"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    with Progress() as progress, tempfile.TemporaryDirectory() as tmp:
        for ax, runtime in zip(axes, ("onnxruntime", "torch")):
            text, _, fit = build_target(measure(runtime, progress))
            target = load_target(write_target(text, Path(tmp) / f"host-{runtime}.yaml"))
            result = validate_host(target, progress=progress)
            result["calibration_fit"] = fit
            report["runtimes"][runtime] = result
            a, kinds = result["agreement"], result["by_kind"]
            cell = lambda k: (f"{kinds[k]['n']}: {kinds[k]['spearman']:.2f}, {kinds[k]['median_abs_error']:.0%}"  # noqa: E731
                              if k in kinds else "-")
            lines.append(f"| {runtime} | {a['n']} | {a['spearman']:.3f} | {a['median_abs_error']:.1%} | "
                         f"{cell('float layers only')} | {cell('every layer int8')} | {cell('int8 and float mixed')} |")
            for model in dict.fromkeys(r["model"] for r in result["rows"]):
                rows = [r for r in result["rows"] if r["model"] == model]
                ax.scatter([r["measured_s"] * 1e3 for r in rows], [r["predicted_s"] * 1e3 for r in rows], label=model)
            every = [r[k] * 1e3 for r in result["rows"] for k in ("measured_s", "predicted_s")]
            span = [min(every) / 1.5, max(every) * 1.5]
            ax.plot(span, span, "k--", lw=0.8)
            ax.set(xscale="log", yscale="log", xlabel="measured (ms)", ylabel="predicted (ms)",
                   title=f"{runtime}: Spearman {a['spearman']:.3f}, median error {a['median_abs_error']:.0%}")
            ax.legend(fontsize=8)
            print(lines[-1])
    lines += ["", "Cells: n: Spearman, median error. Per variant rows in host_fidelity.json."]
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / "host_fidelity.png", dpi=110)
    (OUT / "host_fidelity.json").write_text(json.dumps(report, indent=1) + "\n")
    (OUT / "host_fidelity.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

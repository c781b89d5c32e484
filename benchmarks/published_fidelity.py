"""Published latencies against the analytical model: the fit of each target's kernel figures, and how
well the fitted model predicts the figures it was not fitted on.

    python benchmarks/published_fidelity.py     # writes results/benchmarks/published_fidelity.{json,md,png}

For every target with `role: calibration` entries in cost_models/published.yaml (ResNet-50, MobileNetV2
and VGG-16 of one chosen source per target), the kernel figures marked `fitted` in its YAML are refitted
by least squares on log(predicted / published); the script says whether the YAML holds the fitted values
and reports every published figure, calibration and held-out, with the refitted model.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cost_models import load_target  # noqa: E402
from cost_models.calibrate import CPU_PARAMETERS, GPU_PARAMETERS, _get, fit, published  # noqa: E402
from cost_models.validate import Agreement  # noqa: E402

OUT = ROOT / "results" / "benchmarks"


def parameters(target) -> tuple[str, ...]:
    if target.cpu is not None:
        return CPU_PARAMETERS
    return GPU_PARAMETERS + ("gpu.depthwise_efficiency",)


def main() -> None:
    names = sorted({f.target for f in published(role="calibration")})
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "targets": {}}
    lines = ["# Published latencies against the analytical model", "",
             "Refitted on each target's calibration figures (cost_models/published.yaml); errors are "
             "predicted / published - 1.", "",
             "| target | fitted figures | YAML up to date | calibration: n, median error | held out: n, Spearman, "
             "median error |", "|---|---|---|---|---|"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        target = load_target(name)
        figures = published(name)
        fitted, fit_report = fit(target, figures, parameters(target))
        current = {p: _get(target, p) for p in fit_report.values}
        up_to_date = all(abs(current[p] - v) <= 0.02 * abs(v) + 1e-9 for p, v in fit_report.values.items())
        roles = {}
        for role in ("calibration", "validation"):
            rows = [r for r in fit_report.rows if r["role"] == role]
            if rows:
                roles[role] = Agreement.of([r["predicted_ms"] for r in rows], [r["published_ms"] for r in rows]).__dict__
        report["targets"][name] = {"fitted": fit_report.values, "in_yaml": current, "yaml_up_to_date": up_to_date,
                                   "rows": fit_report.rows, **roles}
        cal, val = roles.get("calibration"), roles.get("validation")
        values = ", ".join(f"{p.split('.', 1)[1]} {v:g}" for p, v in fit_report.values.items())
        lines.append(f"| {name} | {values} | {'yes' if up_to_date else 'NO: ' + str(current)} | "
                     f"{cal['n']}, {cal['median_abs_error']:.1%} | "
                     + (f"{val['n']}, {val['spearman']:.3f}, {val['median_abs_error']:.1%} |" if val else "- |"))
        for role, marker in (("calibration", "s"), ("validation", "o")):
            rows = [r for r in fit_report.rows if r["role"] == role]
            ax.scatter([r["published_ms"] for r in rows], [r["predicted_ms"] for r in rows], marker=marker,
                       label=role, alpha=0.7)
        every = [r["published_ms"] for r in fit_report.rows] + [r["predicted_ms"] for r in fit_report.rows]
        span = [min(every) / 1.5, max(every) * 1.5]
        ax.plot(span, span, "k--", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="published (ms)", ylabel="predicted (ms)", title=name)
        ax.legend(fontsize=8)
        print(f"{name}: fitted {values}; YAML {'up to date' if up_to_date else 'differs: ' + str(current)}; "
              f"calibration median error {cal['median_abs_error']:.1%}"
              + (f"; held out {val['n']}: Spearman {val['spearman']:.3f}, median error {val['median_abs_error']:.1%}"
                 if val else ""))
    lines += ["", "Per figure (held out):", "", "| target | model | precision | batch | published ms | predicted ms | "
              "error | runtime |", "|---|---|---|---|---|---|---|---|"]
    for name, t in report["targets"].items():
        for r in t["rows"]:
            lines.append(f"| {name} | {r['model']} | {r['precision']} | {r['batch']} | {r['published_ms']:.3g} | "
                         f"{r['predicted_ms']:.3g} | {r['error']:+.0%} | {r['runtime'][:60]} |")
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / "published_fidelity.png", dpi=110)
    (OUT / "published_fidelity.json").write_text(json.dumps(report, indent=1) + "\n")
    (OUT / "published_fidelity.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

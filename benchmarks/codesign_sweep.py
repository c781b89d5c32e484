"""Wall time and result of a 12-point co-design sweep on the default workload.

    python benchmarks/codesign_sweep.py      # writes results/benchmarks/codesign_sweep.{json,md} and two plots

Sweeps the Eyeriss-like accelerator over its global buffer (2 sizes), its PE array (3 shapes)
and its DRAM bandwidth (the published 0.72 GB/s and ten times that): 12 points, each searched
for the best ResNet-18 (digits) plan within 2 MB and 2 ms, the front retrained. Uses the
model cache as it is (train it once with `make demo`); the run folder goes to a temporary
folder and only the table, the plots and the figures are kept.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ["codesign", "--target", "eyeriss-like", "--sweep", "glb_kb=32,128", "--sweep", "pe=8x8,12x14,16x16",
           "--sweep", "dram.bandwidth_bytes_per_s=7.2e8,7.2e9", "--budget", "2MB", "--latency", "2ms"]


def main() -> None:
    out = ROOT / "results" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as results:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "hwsearch", *COMMAND, "--results", results, "--run-id", "sweep",
                               "--quiet"], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"the sweep failed ({proc.returncode}): {proc.stderr.strip()}")
        folder = Path(results) / "sweep"
        summary = json.loads((folder / "codesign.json").read_text())
        for name in ("accuracy.png", "front.png"):
            shutil.copy(folder / name, out / f"codesign_sweep_{name}")
        table = (folder / "points.csv").read_text()
    figures = {
        "command": "hwsearch " + " ".join(COMMAND),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "wall_s": round(wall, 1),
        "stage_s": summary["timings_s"],
        "proxy_table": summary["prepared"]["proxy_table"],
        "points": len(summary["points"]),
        "feasible": sum(r["status"] == "ok" for r in summary["points"]),
        "front": summary["front"],
        "trials_per_point": summary["config"]["trials"],
        "table": [{"point": r["id"], **r["params"], "area_mm2": r["hardware"]["area_mm2"],
                   "best_proxy": r["best"] and r["best"]["proxy"], "size_bytes": r["best"] and r["best"]["size_bytes"],
                   "latency_ms": r["best"] and r["best"]["latency_s"] * 1e3,
                   "energy_mj": r["best"] and r["best"]["energy_j"] * 1e3,
                   "compression": r["best"] and r["best"]["compression"], "on_front": r["on_front"],
                   "test_accuracy_retrained": r["retrained"] and r["retrained"]["test_accuracy"]}
                  for r in summary["points"]],
        "stdout": proc.stdout,
    }
    (out / "codesign_sweep.json").write_text(json.dumps(figures, indent=1) + "\n")
    lines = [f"# {figures['command']}", "",
             f"{figures['date']}, {figures['machine']['cpus']} CPUs: {figures['wall_s']} s wall for "
             f"{figures['points']} points ({figures['trials_per_point']} trials each), front {', '.join(figures['front'])} "
             f"retrained; stages {figures['stage_s']}; proxy table {figures['proxy_table']}.", "",
             "```", proc.stdout.rstrip(), "```", "", "points.csv:", "", "```", table.rstrip(), "```", "",
             "![accuracy](codesign_sweep_accuracy.png)", "", "![front](codesign_sweep_front.png)", ""]
    (out / "codesign_sweep.md").write_text("\n".join(lines))
    print(proc.stdout, end="")
    print(f"wall {wall:.1f} s -> {out / 'codesign_sweep.md'}")


if __name__ == "__main__":
    main()

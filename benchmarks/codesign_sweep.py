"""Wall time and result of a 12-point co-design sweep on the default workload.

    python benchmarks/codesign_sweep.py      # writes results/benchmarks/codesign_sweep.{json,md} and
                                             # results/benchmarks/codesign_sweep/ (the sweep's table, report, plots)

Sweeps the Eyeriss-like accelerator over its global buffer (2 sizes), its PE array (3 shapes)
and its DRAM bandwidth (the published 0.72 GB/s and ten times that): 12 points, each searched
for the best ResNet-18 (digits) plan within 2 MB and 2 ms, the front retrained. Uses the
model cache as it is (train it once with `make demo`); the run folder goes to a temporary
folder and only its summary, table, report and plots are kept (not the points' run folders).
Wall time and the CPU time of the sweep's process (user + system) are both recorded: on a
shared machine the first grows with the load, the second much less.
"""
from __future__ import annotations

import json
import os
import platform
import resource
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
    kept = out / "codesign_sweep"
    with tempfile.TemporaryDirectory() as results:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "hwsearch", *COMMAND, "--results", results, "--run-id", "sweep",
                               "--quiet"], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(f"the sweep failed ({proc.returncode}): {proc.stderr.strip()}")
        folder = Path(results) / "sweep"
        summary = json.loads((folder / "codesign.json").read_text())
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir()
        for name in ("codesign.json", "points.csv", "report.md", "accuracy.png", "front.png"):
            shutil.copy(folder / name, kept / name)
        table = (folder / "points.csv").read_text()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures = {
        "command": "hwsearch " + " ".join(COMMAND),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "load_average_1_5_15": os.getloadavg(),
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
             f"{figures['date']}, {figures['machine']['cpus']} CPUs (load average at the end "
             f"{', '.join(f'{v:.1f}' for v in figures['load_average_1_5_15'])}): {figures['wall_s']} s wall, "
             f"{figures['cpu_s']} s CPU for "
             f"{figures['points']} points ({figures['trials_per_point']} trials each), front {', '.join(figures['front'])} "
             f"retrained; stages {figures['stage_s']}; proxy table {figures['proxy_table']}.", "",
             "```", proc.stdout.rstrip(), "```", "", "points.csv:", "", "```", table.rstrip(), "```", "",
             "The sweep's own report: [codesign_sweep/report.md](codesign_sweep/report.md).", "",
             "![accuracy](codesign_sweep/accuracy.png)", "", "![front](codesign_sweep/front.png)", ""]
    (out / "codesign_sweep.md").write_text("\n".join(lines))
    print(proc.stdout, end="")
    print(f"wall {wall:.1f} s -> {out / 'codesign_sweep.md'}")


if __name__ == "__main__":
    main()

"""Wall time and quality of the default job, cold (training first) and warm (cached model).

    python benchmarks/default_run.py            # writes results/benchmarks/default_run.json

Cold uses a fresh, empty model cache so that training is included; warm reuses it.
The issue's bars: cold < 10 min, warm < 5 min on 2 cores; file <= 10,000,000 bytes;
test accuracy within 2 points of the baseline.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ["--target", "cortex-a76", "--budget", "10MB"]


def run(label: str, cache: str, results: str) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hwsearch", *COMMAND, "--cache-dir", cache, "--results", results,
                           "--run-id", label, "--quiet"], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{label} run failed: {proc.stderr.strip()}")
    summary = json.loads((Path(results) / label / "summary.json").read_text())
    return {
        "wall_s": round(wall, 1),
        "stage_s": summary["timings_s"],
        "baseline_test_accuracy": summary["baseline"]["test_accuracy"],
        "final_test_accuracy": summary["final"]["test_accuracy"],
        "size_bytes": summary["final"]["size_bytes"],
        "file_bytes_on_disk": (Path(results) / label / "model.hws").stat().st_size,
        "compression_ratio": round(summary["compression_ratio"], 3),
        "predicted_latency_ms": round(summary["final"]["latency_s"] * 1e3, 4),
        "predicted_energy_mj": round(summary["final"]["energy_j"] * 1e3, 4),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as results:
        figures = {"cold": run("cold", cache, results), "warm": run("warm", cache, results)}
    out = {
        "command": "hwsearch " + " ".join(COMMAND),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        **figures,
    }
    path = ROOT / "results" / "benchmarks" / "default_run.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

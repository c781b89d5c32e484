"""Benchmark scripts that need hardware this machine lacks still run here, on the CPU."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import gpu_latency  # noqa: E402


def test_the_gpu_benchmark_runs_on_the_cpu_and_writes_its_report(tmp_path):
    report = gpu_latency.main(["--device", "cpu", "--target", "host-torch", "--models", "resnet18_digits",
                               "--batches", "1,4", "--variants", "1", "--output", str(tmp_path)])
    variants = {r["variant"] for r in report["rows"]}
    assert variants == {"fp32", "fp16", "low-rank 1"}
    assert {r["batch"] for r in report["rows"]} == {1, 4}
    assert all(r["measured_s"] > 0 and r["predicted_s"] > 0 for r in report["rows"])
    saved = json.loads((tmp_path / "gpu_latency.json").read_text())
    assert saved["device"] == "cpu" and saved["batch_4"]["n"] == 3
    assert (tmp_path / "gpu_latency.md").read_text().startswith("# Measured on cpu against target host-torch")


def test_the_torch_pruning_baseline_fits_the_budget_and_still_runs():
    import torch

    import search_quality
    from hwsearch.workloads import build_model

    torch.manual_seed(0)
    model = build_model("lenet5_digits").eval()
    example = torch.randn(1, 1, 8, 8)
    full = search_quality.fp32_bytes(model)
    pruned = search_quality.torch_pruned(model, example, full // 4)
    assert search_quality.fp32_bytes(pruned) <= full // 4 < search_quality.fp32_bytes(model)
    assert pruned(example).shape == (1, 10)                        # the classifier keeps its ten outputs
    assert search_quality.torch_pruned(model, example, 10) is None    # no ratio gets a model under 10 bytes


def test_every_benchmark_script_imports():
    """A script that no longer imports (a moved function) fails here, not an hour into a benchmark run."""
    import importlib

    for script in sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py")):
        importlib.import_module(script.stem)

"""The CLI as a user runs it: a tiny end-to-end search, and one clear line for bad input."""
import json
import os
import subprocess
import sys

import pytest
import torch

from hwsearch.export import artifact
from hwsearch.workloads import load_workload


def hwsearch(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "hwsearch", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tiny_run(model_cache, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("run")
    proc = hwsearch("--model", "lenet5_digits", "--target", "cortex-a76", "--budget", "20KB", "--trials", "60",
                    "--top-k", "2", "--finetune-epochs", "2", "--cache-dir", str(model_cache),
                    "--run-id", "tiny", "--quiet", cwd=cwd)
    return proc, cwd / "results" / "tiny"


def test_end_to_end_run_exports_a_file_within_budget(tiny_run, model_cache):
    proc, folder = tiny_run
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "results" in proc.stdout
    for name in ("summary.json", "candidates.csv", "plan.json", "pareto.png", "layers.png", "report.md",
                 "model.hws", "study.journal"):
        assert (folder / name).stat().st_size > 0, name
    summary = json.loads((folder / "summary.json").read_text())
    size = (folder / "model.hws").stat().st_size
    assert summary["final"]["size_bytes"] == size <= summary["budget_bytes"] == 20_000
    assert summary["compression_ratio"] == pytest.approx(summary["baseline"]["size_bytes"] / size)
    assert summary["reload_max_abs_diff"] == 0.0
    assert summary["final"]["test_accuracy"] >= summary["baseline"]["test_accuracy"] - 0.05
    assert summary["search"]["trials"] == 60 and len(summary["retrained"]) == 2
    for key in ("latency_s", "energy_j"):              # a size budget need not make a tiny model faster
        assert 0 < summary["final"][key] < 1 and 0 < summary["baseline"][key] < 1
    lines = (folder / "candidates.csv").read_text().splitlines()
    assert len(lines) == 61 and lines[0].startswith("trial,feasible,proxy,size_bytes")


def test_the_report_sets_the_choice_beside_the_baselines_and_the_measured_divergence(tiny_run):
    _, folder = tiny_run
    summary = json.loads((folder / "summary.json").read_text())
    baselines = summary["search"]["baselines"]
    assert {"uniform", "greedy"} <= set(baselines)
    assert all(b["size_bytes"] <= 20_000 for b in baselines.values())
    assert all(summary["search"]["exact_optimum"]["proxy"] <= b["proxy"] + 1e-12 for b in baselines.values())
    assert summary["search"]["proxy"] == "weighted"
    assert all(r["end_to_end_divergence"] >= 0 for r in summary["retrained"])
    report = (folder / "report.md").read_text()
    assert "| uniform |" in report and "| greedy |" in report and "output divergence, measured" in report


def test_exported_file_reloads_with_the_reported_accuracy(tiny_run, model_cache):
    _, folder = tiny_run
    model, meta = artifact.load(folder / "model.hws")
    data = load_workload("lenet5_digits", cache_dir=model_cache).data
    with torch.no_grad():
        acc = (model(data.test.x).argmax(1) == data.test.y).float().mean().item()
    summary = json.loads((folder / "summary.json").read_text())
    assert acc == pytest.approx(summary["final"]["test_accuracy"])
    assert meta["model"]["name"] == "lenet5_digits"


@pytest.mark.parametrize("args, message", [
    (["--budget", "10XB"], "budget '10XB' is not a size"),
    (["--budget", "10MB", "--target", "cortex-a99"], "unknown target 'cortex-a99'"),
    (["--budget", "10MB", "--model", "vgg99"], "unknown model 'vgg99'"),
    (["--budget", "10MB", "--trials", "0"], "--trials must be at least 1"),
    (["--budget", "10MB", "--target", "broken.yaml"], "is not valid YAML"),
    (["--budget", "1KB", "--model", "lenet5_digits"], "cannot be met"),
    (["--budget", "10MB", "--run-id", "../elsewhere"], "is not a plain folder name"),
    (["--budget", "20KB", "--model", "lenet5_digits", "--results", "a-file/runs"], "--results a-file/runs cannot be created"),
    ([], "no budget given: pass --budget"),
    (["--latency", "5"], "--latency '5' is not a latency"),
    (["--energy", "2ms"], "--energy '2ms' is not an energy"),
    (["--budget", "10MB", "--objectives", "latency"], "must list proxy"),
    (["--budget", "10MB", "--sampler", "magic"], "--sampler 'magic' is not an Optuna sampler"),
    (["--budget", "10MB", "--max-accuracy-drop", "-1"], "--max-accuracy-drop is in points"),
    (["--budget", "20KB", "--latency", "1ns", "--model", "lenet5_digits"], "cannot be met together"),
])
def test_bad_input_gives_one_line_exit_2_and_no_results(args, message, model_cache, tmp_path):
    (tmp_path / "broken.yaml").write_text("name: [oops\n")
    (tmp_path / "a-file").write_text("not a folder")
    proc = hwsearch(*args, "--cache-dir", str(model_cache), "--quiet", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwsearch: error:") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def _complete_trials(journal) -> int:
    import optuna
    if not journal.exists():
        return 0
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    studies = storage.get_all_studies()
    return len(storage.get_all_trials(studies[0]._study_id, states=(optuna.trial.TrialState.COMPLETE,))) if studies else 0


def test_a_second_run_with_the_same_id_is_refused_and_sigterm_keeps_the_finished_trials(model_cache, tmp_path):
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "hwsearch", "--model", "lenet5_digits", "--budget", "20KB", "--trials", "2000",
            "--cache-dir", str(model_cache), "--run-id", "same", "--quiet"]
    first = subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "results" / ".same.partial" / "study.journal"
    deadline = time.monotonic() + 300
    while _complete_trials(journal) < 3:                             # the search has finished a few trials
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.poll() else "timeout"
        time.sleep(0.1)
    second = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert "run same is already running in results/.same.partial (process " in second.stderr
    assert first.poll() is None                                         # the first run goes on, untouched
    done = _complete_trials(journal)
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM
    kept = _complete_trials(journal)
    assert kept >= done and stderr.strip() == (f"hwsearch: interrupted; {kept} finished trials kept: hwsearch --resume "
                                               "results/.same.partial continues the run")
    third = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 2 and "an interrupted run same is in results/.same.partial: continue it with " \
        "hwsearch --resume results/.same.partial, or remove the folder" in third.stderr
    assert _complete_trials(journal) == kept                           # nothing was deleted


def test_ctrl_c_during_start_up_is_one_line_and_leaves_nothing(tmp_path):
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "hwsearch", "--model", "lenet5_digits", "--budget", "20KB",
                             "--cache-dir", str(tmp_path / "cache"), "--quiet"],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    maps = f"/proc/{proc.pid}/maps"
    deadline = time.monotonic() + 300
    while "libtorch" not in open(maps).read():                # torch is being imported: start-up, not the run
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT
    assert stderr.strip() == "hwsearch: interrupted; no results were written"
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_a_latency_budget_alone_and_the_binding_budget_in_the_report(model_cache, tmp_path):
    proc = hwsearch("--model", "lenet5_digits", "--latency", "1ms", "--energy", "1mJ", "--trials", "20",
                    "--top-k", "1", "--finetune-epochs", "0", "--cache-dir", str(model_cache), "--run-id", "lat",
                    "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "results" / "lat" / "summary.json").read_text())
    assert summary["budgets"] == {"latency_s": 1e-3, "energy_j": 1e-3} and summary["budget_bytes"] is None
    assert summary["final"]["latency_s"] <= 1e-3 and summary["final"]["energy_j"] <= 1e-3
    assert summary["binding"] in ("latency_s", "energy_j")
    assert summary["search"]["exact_optimum"]["proxy"] <= summary["search"]["best_proxy"] + 1e-12
    for name in ("pareto.csv", "layers.csv"):
        assert (tmp_path / "results" / "lat" / name).read_text().count("\n") >= 2


def test_a_model_below_the_accuracy_floor_writes_its_folder_says_so_and_exits_3(model_cache, tmp_path):
    # 4,000 bytes is near LeNet-5's smallest possible file (2,956): without fine-tuning it loses tens of points
    proc = hwsearch("--model", "lenet5_digits", "--budget", "4000", "--max-accuracy-drop", "0.5", "--trials", "20",
                    "--top-k", "1", "--finetune-epochs", "0", "--cache-dir", str(model_cache), "--run-id", "low",
                    "--quiet", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwsearch: accuracy floor not met"), proc.stderr
    summary = json.loads((tmp_path / "results" / "low" / "summary.json").read_text())
    floor = summary["accuracy_floor"]
    assert floor["met"] is False and floor["drop"] > 0.005
    assert 4000 < floor["suggested_size_bytes"] <= summary["baseline"]["size_bytes"]
    assert f"{floor['suggested_size_bytes']:,} bytes" in lines[0]
    assert "Accuracy floor not met" in (tmp_path / "results" / "low" / "report.md").read_text()

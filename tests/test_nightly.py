"""hwsearch nightly: a small real matrix on LeNet-5, idempotent, failures isolated, the file checked up front."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hwsearch.runs import pipeline
from hwsearch.nightly import NightlyError, exit_code, load_nightly, run_nightly

MATRIX = """\
results: {results}
defaults:
  model: lenet5_digits
  trials: 20
  top_k: 1
  finetune_epochs: 0
entries:
  - target: [cortex-a76, eyeriss-like]     # two runs, named by default
    budget: 20KB
  - name: impossible                       # passes the checks; no plan fits 1 KB, so the run fails
    target: cortex-a76
    budget: 1KB
"""


def _write(tmp_path, text=MATRIX) -> Path:
    path = tmp_path / "nightly.yaml"
    path.write_text(text.replace("{results}", str(tmp_path / "nightly")))
    return path


def test_entries_expand_to_named_runs_with_defaults(tmp_path, model_cache):
    nightly = load_nightly(_write(tmp_path), cache_dir=str(model_cache))
    assert [e.name for e in nightly.entries] == ["lenet5_digits-cortex-a76-20KB", "lenet5_digits-eyeriss-like-20KB",
                                                 "impossible"]
    first = nightly.entries[0].config
    assert (first.model, first.target, first.budget, first.trials, first.top_k, first.finetune_epochs) == \
        ("lenet5_digits", "cortex-a76", "20KB", 20, 1, 0)
    assert first.run_id == "lenet5_digits-cortex-a76-20KB" and first.cache_dir == str(model_cache)
    assert nightly.results == tmp_path / "nightly"
    night = tmp_path / "nightly" / "2026-12-06"          # --results: one folder per night
    assert load_nightly(_write(tmp_path), results=str(night)).results == night


def test_a_failing_entry_is_recorded_and_the_others_run_then_a_rerun_skips_what_finished(tmp_path, model_cache):
    nightly = load_nightly(_write(tmp_path), cache_dir=str(model_cache))
    first = run_nightly(nightly)
    status = {e["name"]: e["status"] for e in first["entries"]}
    assert status == {"lenet5_digits-cortex-a76-20KB": "ok", "lenet5_digits-eyeriss-like-20KB": "ok",
                      "impossible": "failed"}
    failed = first["entries"][2]
    assert "cannot be met" in failed["error"] and failed["figures"] is None
    assert not (tmp_path / "nightly" / "impossible").exists()
    assert exit_code(first) == 1 and first["counts"] == {"entries": 3, "ok": 2, "below floor": 0, "failed": 1,
                                                         "skipped": 0}
    saved = json.loads((tmp_path / "nightly" / "nightly.json").read_text())
    assert saved == first and not list((tmp_path / "nightly").glob(".*.tmp"))
    for entry in first["entries"][:2]:
        summary = json.loads((Path(entry["folder"]) / "summary.json").read_text())
        assert entry["figures"]["size_bytes"] == summary["final"]["size_bytes"] <= 20_000
        assert entry["figures"]["test_accuracy"] == summary["final"]["test_accuracy"]
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "nightly").rglob("*") if p.name != "nightly.json"}

    second = run_nightly(nightly)          # idempotent: finished entries skipped, their figures read back
    assert [(e["status"], e["skipped"]) for e in second["entries"]] == [("ok", True), ("ok", True), ("failed", False)]
    assert [e["figures"] for e in second["entries"]] == [e["figures"] for e in first["entries"]]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "nightly").rglob("*") if p.name != "nightly.json"} == stamps
    assert second["counts"]["skipped"] == 2

    renamed = _write(tmp_path, MATRIX.replace("  - target: [cortex-a76, eyeriss-like]     # two runs, named by default\n"
                                              "    budget: 20KB\n",
                                              "  - {name: lenet5_digits-cortex-a76-20KB, target: cortex-a76, "
                                              "budget: 20KB, seed: 1}\n"))
    third = run_nightly(load_nightly(renamed, cache_dir=str(model_cache)))    # same name, other settings
    assert third["entries"][0]["status"] == "failed"
    assert "holds a run with other settings (seed 0 -> 1)" in third["entries"][0]["error"]


def test_nightly_json_is_whole_after_every_entry_even_when_interrupted(tmp_path, model_cache, monkeypatch):
    nightly = load_nightly(_write(tmp_path), cache_dir=str(model_cache))
    real_run, calls = pipeline.run, []

    def run_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run(*args, **kwargs)
    monkeypatch.setattr(pipeline, "run", run_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_nightly(nightly)
    saved = json.loads((tmp_path / "nightly" / "nightly.json").read_text())
    assert [e["name"] for e in saved["entries"]] == ["lenet5_digits-cortex-a76-20KB"] and saved["finished"] is None
    assert not (tmp_path / "nightly" / "lenet5_digits-eyeriss-like-20KB").exists()


@pytest.mark.parametrize("text, message", [
    ("entries: []\n", "entries must be a list of at least one search"),
    ("entries:\n  - {model: lenet5_digits, budgt: 20KB}\n", "entry 1: unknown key 'budgt' (did you mean 'budget'?)"),
    ("entries:\n  - {name: a, budget: 10XB}\n", "entry 1 (a): budget '10XB' is not a size"),
    ("entries:\n  - {budget: 20KB, target: cortex-a99}\n", "entry 1: unknown target 'cortex-a99'"),
    ("entries:\n  - {budget: 20KB, model: lenet6_digits}\n", "model 'lenet6_digits' is not a built-in model (did you "
                                                            "mean 'lenet5_digits'?)"),
    ("entries:\n  - {budget: 20KB, trials: 0}\n", "entry 1: trials must be at least 1, got 0"),
    ("entries:\n  - {budget: 20KB, trials: many}\n", "entry 1: trials: Input should be a valid integer"),
    ("entries:\n  - {model: lenet5_digits}\n", "entry 1: no budget given: set budget"),
    ("entries:\n  - {budget: [20KB, 30KB], name: x}\n", "name 'x' would name 2 runs"),
    ("entries:\n  - {budget: 20KB}\n  - {budget: 20KB}\n", "two entries are named 'resnet18_digits-cortex-a76-20KB'"),
    ("entries:\n  - {budget: 20KB, name: ../up}\n", "name '../up' is not a plain folder name"),
    ("entries:\n  - {budget: 20KB, objectives: latency}\n", "must list proxy"),
    ("runs: []\n", "unknown top-level key 'runs'"),
    ("entries: [\n", "is not valid YAML"),
    ("entries:\n  - {budget: 20KB}\n  - {budget: 20KB, budget: 30KB}\n", "duplicate key 'budget'"),
])
def test_a_bad_nightly_file_is_refused_whole_naming_the_entry(text, message, tmp_path):
    path = tmp_path / "nightly.yaml"
    path.write_text(text)
    with pytest.raises(NightlyError) as err:
        load_nightly(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def hwsearch(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "hwsearch", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_cli_exits_non_zero_when_an_entry_failed_and_2_for_a_bad_file(tmp_path, model_cache):
    path = _write(tmp_path, MATRIX.replace("  - target: [cortex-a76, eyeriss-like]", "  - target: cortex-a76"))
    proc = hwsearch("nightly", str(path), "--cache-dir", str(model_cache), "--quiet", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "2 entries: 1 ok, 0 below the accuracy floor, 1 failed" in proc.stdout
    assert "impossible: failed: budget 1.00 KB (1,000 bytes) cannot be met" in proc.stdout
    (tmp_path / "bad.yaml").write_text("entries:\n  - {name: x, budget: 20KB, target: cortex-a99}\n")
    proc = hwsearch("nightly", "bad.yaml", "--quiet", cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "entry 1 (x): unknown target 'cortex-a99'" in lines[0]
    assert "Traceback" not in proc.stderr and not (tmp_path / "results").exists()


def test_the_repository_example_is_a_valid_nightly_file():
    nightly = load_nightly(Path(__file__).resolve().parent.parent / "nightly.yaml")
    assert len(nightly.entries) >= 3 and len({e.config.target for e in nightly.entries}) >= 2

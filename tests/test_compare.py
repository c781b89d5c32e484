"""hwsearch compare: regressions between two run folders or two nightlies, exit codes, tolerances, --json."""
import json
import os
import subprocess
import sys

import pytest

from hwsearch.nightly import CompareError, Tolerances, compare, format_table


def _summary(accuracy=0.98, size=19_000, latency=1e-3, energy=2e-3, met=True, budgets=None):
    return {"model": "lenet5_digits", "target": "cortex-a76", "budgets": budgets or {"size_bytes": 20_000},
            "final": {"test_accuracy": accuracy, "size_bytes": size, "latency_s": latency, "energy_j": energy},
            "accuracy_floor": {"met": met}}


def _run(tmp_path, name, **figures):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(_summary(**figures)))
    return folder


def _nightly(tmp_path, name, entries):
    path = tmp_path / name
    path.write_text(json.dumps({"entries": [
        {"name": n, "model": "lenet5_digits", "target": "cortex-a76", "budgets": {"budget": "20KB"},
         "status": status, "error": None if status == "ok" else "boom",
         "figures": None if status == "failed" else {"test_accuracy": acc, "size_bytes": 19_000, "latency_s": 1e-3,
                                                     "energy_j": 2e-3}}
        for n, status, acc in entries]}))
    return path


def test_identical_runs_have_no_regression(tmp_path):
    result = compare(_run(tmp_path, "a"), _run(tmp_path, "b"))
    assert result["regressions"] == 0 and result["kind"] == "run"
    assert all(not m["regression"] and m["change"] == 0 for m in result["entries"][0]["metrics"].values())


@pytest.mark.parametrize("new, regressed", [
    ({"accuracy": 0.9749}, "accuracy -0.51 points"),          # beyond 0.5 points
    ({"size": 19_200}, "size +1.05%"),
    ({"latency": 1.02e-3}, "latency +2.00%"),
    ({"energy": 2.1e-3}, "energy +5.00%"),
    ({"met": False}, "below floor in NEW"),
])
def test_each_kind_of_regression_is_named(tmp_path, new, regressed):
    result = compare(_run(tmp_path, "a"), _run(tmp_path, "b", **new))
    assert result["regressions"] == 1 and any(regressed in r for r in result["entries"][0]["regressions"])


def test_changes_within_tolerance_or_for_the_better_are_not_regressions(tmp_path):
    old = _run(tmp_path, "a")
    assert compare(old, _run(tmp_path, "b", accuracy=0.976, size=19_150, latency=1.009e-3))["regressions"] == 0
    assert compare(old, _run(tmp_path, "c", accuracy=0.99, size=10_000, latency=0.5e-3, energy=1e-3))["regressions"] == 0
    looser = Tolerances(accuracy_points=2, energy_pct=10)
    assert compare(old, _run(tmp_path, "d", accuracy=0.965, energy=2.1e-3), looser)["regressions"] == 0
    strict = Tolerances(accuracy_points=0, size_pct=0, latency_pct=0, energy_pct=0)
    assert compare(old, _run(tmp_path, "e", size=19_001), strict)["regressions"] == 1


def test_nightlies_match_entries_by_name(tmp_path):
    old = _nightly(tmp_path, "old.json", [("a", "ok", 0.98), ("b", "ok", 0.98), ("c", "failed", 0), ("d", "ok", 0.9)])
    new = _nightly(tmp_path, "new.json", [("a", "ok", 0.98), ("b", "failed", 0), ("c", "ok", 0.97), ("e", "ok", 0.9)])
    result = compare(old, new)
    rows = {r["name"]: r for r in result["entries"]}
    assert rows["a"]["regressions"] == []
    assert rows["b"]["regressions"] == ["failed in NEW (boom)"]
    assert rows["c"]["regressions"] == []                 # it failed before: nothing to compare, not a regression
    assert rows["d"]["regressions"] == ["missing in NEW"]
    assert rows["e"]["notes"] == ["new entry"] and rows["e"]["regressions"] == []
    assert result["regressions"] == 2
    table = format_table(result)
    assert "REGRESSION: failed in NEW (boom)" in table and table.endswith(f"2 regressions in 5 entries ({old} -> {new})")
    assert compare(tmp_path / "old.json", tmp_path / "old.json")["regressions"] == 0


def test_mixed_or_unreadable_inputs_are_refused(tmp_path):
    run = _run(tmp_path, "a")
    nightly = _nightly(tmp_path, "n.json", [("a", "ok", 0.98)])
    with pytest.raises(CompareError, match="is a run and .* a nightly: compare two run folders or two nightly.json"):
        compare(run, nightly)
    with pytest.raises(CompareError, match="is neither a run folder"):
        compare(tmp_path / "missing", run)
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(CompareError, match="does not hold a JSON object"):
        compare(tmp_path / "junk.json", nightly)
    with pytest.raises(CompareError, match="--accuracy-tol must be 0 or more"):
        Tolerances(accuracy_points=-1)


def hwsearch(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "hwsearch", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_exit_codes_and_json(tmp_path):
    old, same, worse = _run(tmp_path, "old"), _run(tmp_path, "same"), _run(tmp_path, "worse", latency=1.5e-3)
    proc = hwsearch("compare", str(old), str(same), cwd=tmp_path)
    assert proc.returncode == 0 and "0 regressions in 1 entry" in proc.stdout
    proc = hwsearch("compare", str(old), str(worse), cwd=tmp_path)
    assert proc.returncode == 1 and "REGRESSION: latency +50.00% (tolerance 1%)" in proc.stdout
    proc = hwsearch("compare", str(old), str(worse), "--latency-tol", "60", "--json", cwd=tmp_path)
    assert proc.returncode == 0 and json.loads(proc.stdout)["tolerances"]["latency_pct"] == 60
    proc = hwsearch("compare", str(old), str(tmp_path / "nothing"), cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "is neither a run folder" in lines[0]
    assert "Traceback" not in proc.stderr

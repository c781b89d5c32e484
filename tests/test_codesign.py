"""hwsearch codesign: a small real sweep on LeNet-5, the tables built once, the front retrained, bad input refused."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from rich.progress import Progress

from cost_models import load_target
from cost_models import table as cost_table
from hwsearch.runs import prepared, tables
from hwsearch.proxy import table as proxy
from hwsearch.codesign import CodesignConfig, front_ids, plan_grid, run_codesign
from hwsearch.config import RunConfig
from hwsearch.errors import BudgetInfeasible
from hwsearch.workloads import load_workload


def _fresh_cache(model_cache, tmp_path):
    """A cache holding the trained LeNet-5 but no proxy table, so that building one shows."""
    load_workload("lenet5_digits", cache_dir=model_cache)
    cache = tmp_path / "cache"
    cache.mkdir()
    for weights in model_cache.glob("lenet5_digits-*.pt"):
        shutil.copy(weights, cache)
    return cache


def _counting(monkeypatch, module, name, counts):
    original = getattr(module, name)

    def counted(*args, **kwargs):
        counts[name] = counts.get(name, 0) + 1
        return original(*args, **kwargs)
    monkeypatch.setattr(module, name, counted)


@pytest.fixture(scope="module")
def sweep(model_cache, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("codesign")
    counts: dict[str, int] = {}
    with pytest.MonkeyPatch.context() as patch:
        for module, name in ((proxy, "build_proxy_table"), (prepared, "open_workload"),
                             (prepared, "cached_proxy_table"), (tables, "build_cost_table"),
                             (cost_table, "build_cost_table")):
            _counting(patch, module, name, counts)
        run = RunConfig(model="lenet5_digits", target="eyeriss-like", budget="20KB", trials=30, top_k=2,
                        finetune_epochs=1, cache_dir=str(_fresh_cache(model_cache, tmp)), results_dir=str(tmp / "results"),
                        run_id="sweep")
        # progress bars as the CLI passes them (disabled, as with --quiet): every call a run makes on them must work
        with Progress(disable=True) as bars:
            summary, folder = run_codesign(CodesignConfig(run, ("pe=8x8,12x14", "glb_kb=16,64")), bars)
    return summary, folder, counts


def test_the_model_and_the_proxy_table_are_built_once_for_every_point(sweep):
    summary, _, counts = sweep
    assert counts["open_workload"] == 1 and counts["cached_proxy_table"] == 1
    assert counts["build_proxy_table"] == 1                      # computed once (the cache was empty), then reused
    retrained = len(summary["front"])
    assert counts["build_cost_table"] == len(summary["points"]) + retrained   # only the hardware's tables are redone:
    # once per point for its study, once more for each retrained point's whole run
    assert summary["prepared"] == {"builds": 1, "proxy_table": "computed", "timings_s": summary["prepared"]["timings_s"]}


def test_every_point_searches_its_own_target_and_the_front_runs_whole(sweep):
    summary, folder, _ = sweep
    assert [r["id"] for r in summary["points"]] == ["p01", "p02", "p03", "p04"]
    assert not list(folder.parent.glob(".*.partial"))
    for name in ("codesign.json", "points.csv", "report.md", "accuracy.png", "front.png"):
        assert (folder / name).stat().st_size > 0, name
    rows = (folder / "points.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("point,pe,glb_kb,status,onchip_bytes,mac_units,area_mm2,best_proxy")
    assert json.loads((folder / "codesign.json").read_text())["points"] == summary["points"]
    for record in summary["points"]:
        point_dir = folder / record["folder"]
        target = load_target(point_dir / "target.yaml")         # the point's target, reloadable as a file
        assert target.name == record["target"] == (f"eyeriss-like[pe={record['params']['pe']},"
                                                   f"glb_kb={record['params']['glb_kb']}]")
        assert target.memory[3].size_bytes == int(record["params"]["glb_kb"]) * 1024
        rows, cols = map(int, record["params"]["pe"].split("x"))
        assert target.compute[0].macs_per_cycle == rows * cols == record["hardware"]["mac_units"]
        best = record["best"]
        assert best["size_bytes"] <= 20_000 and best["latency_s"] > 0 and best["proxy"] >= best["exact_optimum"] - 1e-9
        assert len((point_dir / "candidates.csv").read_text().splitlines()) == 31      # 30 trials
        assert (point_dir / "run").exists() == record["on_front"]


def test_only_the_front_is_retrained_and_the_front_is_undominated(sweep):
    summary, folder, _ = sweep
    points = summary["points"]
    assert summary["front"] and front_ids(points, 0.05) == set(summary["front"]) and summary["front_tol_pct"] == 5
    for r in points:
        assert (r["retrained"] is not None) == r["on_front"] == (r["id"] in summary["front"])
        if r["on_front"]:
            run = json.loads((folder / r["retrained"]["folder"] / "summary.json").read_text())
            assert run["target"] == r["target"] and run["config"]["finetune_epochs"] == 1
            assert run["timings_s"]["workload"] == 0.0 and run["timings_s"]["tables_proxy"] == 0.0   # reused
            assert r["retrained"]["test_accuracy"] == run["final"]["test_accuracy"]
            assert run["search"]["best_proxy"] == r["best"]["proxy"]          # the same study, run again
            assert (folder / r["retrained"]["folder"] / "model.hws").stat().st_size <= 20_000
    key = lambda r: (r["best"]["proxy"], r["best"]["latency_s"], r["best"]["energy_j"], r["hardware"]["area_mm2"])

    def beaten(r, by, tol):
        return any(all(a <= b * (1 + tol) for a, b in zip(key(q), key(r))) and
                   any(a < b * (1 - tol) for a, b in zip(key(q), key(r))) for q in by if q is not r)
    front = [r for r in points if r["on_front"]]
    for r in points:      # the front: beaten by none outright; every other point beaten within 5% by a front point
        assert not beaten(r, points, 0.0) if r["on_front"] else beaten(r, front, 0.05)
    # a bigger global buffer keeps activations on chip: never slower, and it costs area
    by = {(r["params"]["pe"], r["params"]["glb_kb"]): r for r in points}
    for pe in ("8x8", "12x14"):
        small, big = by[(pe, "16")], by[(pe, "64")]
        assert big["best"]["latency_s"] <= small["best"]["latency_s"]
        assert big["hardware"]["area_mm2"] > small["hardware"]["area_mm2"]


def test_a_point_that_cannot_meet_the_budgets_is_kept_as_infeasible(model_cache, tmp_path):
    # at 10 kHz no plan of LeNet-5's 42k MACs fits 1 ms; at 200 MHz every plan does
    run = RunConfig(model="lenet5_digits", target="eyeriss-like", latency="1ms", trials=10, top_k=1,
                    finetune_epochs=0, cache_dir=str(model_cache), results_dir=str(tmp_path / "results"), run_id="lat")
    config = CodesignConfig(run, ("clock_hz=1e4,2e8",), retrain="none")
    summary, folder = run_codesign(config)
    slow, fast = summary["points"]
    assert slow["status"] == "infeasible" and "cannot be met" in slow["error"] and slow["best"] is None
    assert fast["status"] == "ok" and fast["best"]["latency_s"] <= 1e-3 and summary["front"] == ["p02"]
    assert fast["retrained"] is None and "infeasible" in (folder / "report.md").read_text()
    assert not list(folder.glob("points/*/run"))                                  # --retrain none
    with pytest.raises(BudgetInfeasible, match="none of the 1 hardware points can meet the budgets"):
        run_codesign(CodesignConfig(run.__class__(**{**run.__dict__, "run_id": "none"}), ("clock_hz=1e4",)))
    assert not (tmp_path / "results" / "none").exists() and not list((tmp_path / "results").glob(".*"))


def test_codesign_checks_its_own_settings_before_anything_runs():
    run = RunConfig(model="lenet5_digits", target="eyeriss-like", budget="20KB")
    with pytest.raises(Exception, match="takes --objectives proxy only"):
        plan_grid(CodesignConfig(RunConfig(**{**run.__dict__, "objectives": "proxy,latency"}), ("glb_kb=64",)))
    with pytest.raises(Exception, match="--retrain 'some' must be one of front, all, none"):
        plan_grid(CodesignConfig(run, ("glb_kb=64",), retrain="some"))
    with pytest.raises(Exception, match="--front-tol is a percentage from 0 to below 100, got 100"):
        plan_grid(CodesignConfig(run, ("glb_kb=64",), front_tol_pct=100))
    assert len(plan_grid(CodesignConfig(run, ("glb_kb=64:256:x2",)))) == 3


def hwsearch(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "hwsearch", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("args, message", [
    (["--sweep", "glb_kb=0,64"], "1 of 2 hardware points are not valid targets"),
    (["--sweep", "glb_kb=64:32:x2"], "must run upwards"),
    (["--sweep", "nope=1"], "--sweep nope: the top level has no key 'nope'"),
    (["--sweep", "glb_kb=64", "--budget", "10XB"], "budget '10XB' is not a size"),
    (["--sweep", "glb_kb=64", "--target", "cortex-a76"], "cortex-a76 is a cpu"),
    ([], "codesign needs at least one --sweep"),
])
def test_bad_codesign_input_is_one_line_exit_2_and_no_folder(args, message, model_cache, tmp_path):
    argv = ["codesign", "--model", "lenet5_digits", "--target", "eyeriss-like", "--budget", "20KB", *args]
    proc = hwsearch(*argv, "--cache-dir", str(model_cache), "--quiet", cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("hwsearch: error:"), proc.stderr
    assert message in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def test_the_front_tolerance_turns_near_ties_into_ties():
    def point(i, proxy, latency, energy, area):
        return {"id": f"p{i}", "status": "ok", "best": {"proxy": proxy, "latency_s": latency, "energy_j": energy},
                "hardware": {"area_mm2": area}}
    points = [point(1, 1.0, 1.000, 1.0, 1.0),
              point(2, 1.0, 0.997, 0.97, 1.13),     # 0.3% faster, 3% less energy, 13% more area
              point(3, 2.0, 0.500, 1.0, 1.5),       # twice as fast, twice the error
              point(4, 1.0, 1.000, 1.0, 1.1)]       # beaten outright by p1
    assert front_ids(points) == {"p1", "p2", "p3"}
    assert front_ids(points, 0.05) == {"p1", "p3"}
    assert front_ids(points[:1] + [{"id": "p9", "status": "infeasible"}], 0.05) == {"p1"}


def test_the_cli_prints_one_row_per_point_and_the_front(sweep, capsys):
    from hwsearch.commands.codesign import print_codesign

    summary, folder, _ = sweep
    print_codesign(summary, folder)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "hwsearch codesign: lenet5_digits on 4 variants of eyeriss-like, budgets size 20 kB"
    assert lines[1].split()[:3] == ["point", "pe", "glb_kb"] and len(lines) == 1 + 1 + 4 + 2
    for line, record in zip(lines[2:6], summary["points"]):
        assert line.split()[:3] == [record["id"], record["params"]["pe"], record["params"]["glb_kb"]]
        assert ("*" in line.split()) == record["on_front"]
    assert lines[6].startswith(f"  front: {', '.join(summary['front'])} (")

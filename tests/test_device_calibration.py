"""Calibration from a user's own device: export the kit, run its runner, fit the timings into a target.

The round trip runs here, this machine standing in for the phone: the kit is exported, run.py
(a standalone script: no hwsearch import) times it with onnxruntime, and `hwsearch calibrate host
--measurements` fits a target from its CSV. Timing-dependent figures (efficiencies, rates) are
compared with targets/host.yaml in benchmarks/device_calibration.py, not here; the tests check
what does not depend on timing, and the arithmetic on timings made up for the purpose.
"""
import csv
import math
import subprocess
import sys

import pytest

from cost_models import device_kit as kit
from cost_models import microbench as mb
from cost_models.host import INT8_SHAPES, SHAPES, _clock_hz
from cost_models.target import load_target, parse_target
from hwsearch import commands as cli
from hwsearch.errors import TargetError


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kit") / "kit"
    kit.export_kit(folder)
    return folder


@pytest.fixture(scope="module")
def measured(exported):
    """run.py on this machine, in a fresh interpreter that cannot import hwsearch (-I: no user site, no PYTHONPATH,
    run from the kit's folder)."""
    done = subprocess.run([sys.executable, "-I", "run.py", "--min-time", "0.01"], cwd=exported, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return exported / "results.csv"


def test_the_kit_holds_every_kernel_a_manifest_and_a_runner_that_needs_no_hwsearch(exported):
    import json
    manifest = json.loads((exported / "manifest.json").read_text())
    assert [k["id"] for k in manifest["kernels"]] == [k.id for k in kit.kernels()]
    assert all((exported / k["file"]).is_file() for k in manifest["kernels"])
    runner = (exported / "run.py").read_text()
    assert "hwsearch" not in "".join(l for l in runner.splitlines() if l.startswith(("import", "from")))
    assert len(manifest["kernels"]) == 6 + len(SHAPES) + 5 * len(INT8_SHAPES) + 1 + len(kit.STREAM_SIZES)


def test_the_runner_times_every_kernel_and_describes_the_device(measured):
    m = kit.read_measurements(measured)
    assert set(m.seconds) == {k.id for k in kit.kernels()}
    assert m.info["kit"] == str(kit.KIT_VERSION) and m.info["onnxruntime"]
    assert kit._caches(m.info["caches"], load_target("host")) == mb.cache_sizes()      # read from sysfs by run.py


def test_the_round_trip_writes_a_target_of_this_machine(measured, tmp_path, capsys):
    out = tmp_path / "host-kit.yaml"
    assert cli.main(["calibrate", "host", "--measurements", str(measured), "--name", "host-kit",
                     "--output", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    text = out.read_text()
    fitted, base = parse_target(text, source=str(out)), load_target("host")
    assert fitted.name == "host-kit" and fitted.kind == "cpu"
    # what does not depend on timing: the caches and the clock, as calibrate host reads them here
    assert [m.size_bytes for m in fitted.memory[1:]] == [size for _, size in mb.cache_sizes()]
    assert fitted.clock_hz == pytest.approx(_clock_hz(), rel=1e-3)
    assert fitted.cpu.register_tile == base.cpu.register_tile             # from the base target, host
    residuals = [line for line in text.splitlines() if line.startswith("#   ")]
    assert len(residuals) == len(SHAPES) and all(line.rstrip().endswith("%") for line in residuals)
    assert "measured on the device: hwsearch calibrate host --measurements results.csv" in text


def made_up(tmp_path, rate=1e10, call_s=8e-6, layer_s=2e-6, int8_rate=4e10, caches="L1=64K,L2=1024K"):
    """A results.csv of a device with these figures, as run.py would write it: streams at 80 GB/s in L1,
    40 GB/s in L2, 10 GB/s from DRAM, each add node costing 300 ns beyond its bytes."""
    times = {"call-1": call_s + layer_s, f"call-{kit.CALLS}": call_s + kit.CALLS * layer_s,
             "pad-1x1": call_s + kit.PADDING[0].macs / rate, "pad-3x3": call_s + kit.PADDING[1].macs / rate,
             "peak-fp32": call_s + kit.PEAK_FP32.macs / rate, "peak-int8": kit.INT8_PEAK ** 3 / int8_rate}
    for i, shape in enumerate(SHAPES):
        times[f"layer-{i:02d}"] = call_s + mb.LayerShape(*shape).macs / rate
    for i, shape in enumerate(INT8_SHAPES):
        one = mb.LayerShape(*shape).macs
        times.update({f"int8-1-{i:02d}": call_s + 2 * one / int8_rate, f"int8-2-{i:02d}": call_s + 3 * one / int8_rate,
                      f"fp32-1-{i:02d}": call_s + one / rate, f"fp32-2-{i:02d}": call_s + 2 * one / rate,
                      f"mixed-{i:02d}": call_s + 2 * one / rate + 2 * one / int8_rate})
    for k in kit.kernels():
        if k.stream_bytes:
            bandwidth = 80e9 if k.stream_bytes <= 32 * 1024 else 40e9 if k.stream_bytes <= 512 * 1024 else 10e9
            n = k.stream_bytes // kit.STREAM_BYTES_PER_ELEMENT
            times[k.id] = call_s + k.adds * (3e-7 + (0 if k.probe else 12 * n / bandwidth))
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as f:
        f.write(f"# kit: {kit.KIT_VERSION}\n# onnxruntime: 1.20.0\n# cpu_model: Made-up A76\n# caches: {caches}\n"
                "# clock_hz: 2000000000\n")
        writer = csv.writer(f)
        writer.writerow(["id", "file", "median_s", "p10_s", "p90_s", "repeats"])
        writer.writerows([k, f"{k}.onnx", f"{t:.9e}", f"{t:.9e}", f"{t:.9e}", 5] for k, t in times.items())
    return path


def test_the_figures_are_what_the_timings_say(tmp_path):
    figures = kit.figures(kit.read_measurements(made_up(tmp_path)), load_target("cortex-a76"))
    assert figures.layer_overhead_s == pytest.approx(2e-6) and figures.call_s == pytest.approx(8e-6)
    assert figures.fp32_macs_per_s == pytest.approx(1e10) and figures.int8_macs_per_s == pytest.approx(4e10)
    assert [figures.bandwidth[k] for k in ("L2", "DRAM")] == pytest.approx([40e9, 10e9])
    # in L1 an add node moves its bytes in half its fixed cost: the base target's L1 figure, at this clock
    l1d = next(m for m in load_target("cortex-a76").memory if m.name == "l1d")
    assert figures.bandwidth["L1"] == pytest.approx(l1d.bandwidth_bytes_per_cycle * 2e9)
    assert "from target cortex-a76's l1d" in figures.bandwidth_sources["L1"] and "L2" not in figures.bandwidth_sources
    assert figures.caches == [("L1", 64 * 1024), ("L2", 1024 * 1024)] and figures.clock_hz == 2e9
    assert figures.skips_padding is False            # the 3x3 conv on a 1x1 map took 9x the 1x1 one
    assert figures.int8_in_chain_s[0] == pytest.approx(mb.LayerShape(*INT8_SHAPES[0]).macs / 4e10)


def test_a_device_without_cache_sizes_in_sysfs_takes_the_base_targets(tmp_path):
    figures = kit.figures(kit.read_measurements(made_up(tmp_path, caches="")), load_target("cortex-a76"))
    levels = [m for m in load_target("cortex-a76").memory if m.name != "registers"]
    assert [size for _, size in figures.caches] == [m.capacity_bytes for m in levels]


def test_a_device_whose_layers_take_what_a_known_target_predicts_gets_that_targets_efficiencies(tmp_path):
    """Single layers timed as a target with known kernel efficiencies predicts them: the fit finds those
    efficiencies again, and the written file loads with the base target's micro-kernel tile."""
    from cost_models import make_cost_model, weights_stay_on_chip
    from cost_models.host import Identity, _layer, _yaml
    from hwsearch.compression import Option

    base = load_target("cortex-a76")
    path = made_up(tmp_path)
    figures = kit.figures(kit.read_measurements(path), base)
    known = {"gemm_efficiency": 0.6, "conv_efficiency": 0.45, "depthwise_efficiency": 0.12,
             "reduction_overhead": 3.0, "weight_reorder_passes": 0.5}
    identity = Identity("known", "# known", "known", (), "  register_tile: [12, 8]")
    truth = parse_target(_yaml(figures, known, identity), source="known")
    times = {}
    for i, shape in enumerate(SHAPES):
        layer = _layer(shape)
        warm = weights_stay_on_chip(truth, 4 * layer.n_weights, 4 * (math.prod(layer.in_shape) + math.prod(layer.out_shape)))
        times[f"layer-{i:02d}"] = 8e-6 + float(make_cost_model("analytical", truth, warm=warm).price([(layer, Option())]).latency_s[0])
    rows = path.read_text().splitlines()
    path.write_text("\n".join(r if r.split(",")[0] not in times else
                               f"{r.split(',')[0]},x,{times[r.split(',')[0]]:.9e},0,0,5" for r in rows) + "\n")

    text, target, report = kit.calibrated_target(base, kit.read_measurements(path), "made-up")
    assert parse_target(text, source="made-up").name == "made-up"
    assert target.cpu.register_tile == base.cpu.register_tile
    assert report["median_abs_error"] < 0.005
    for name, value in known.items():
        assert report["fitted"][name] == pytest.approx(value, rel=0.02), name
    assert target.cpu.layer_overhead_s == pytest.approx(2e-6)


@pytest.mark.parametrize("edit, words", [
    (lambda rows: rows[:-3], "lacks 3 of the kit's kernels"),
    (lambda rows: [r.replace("# kit: 1", "# kit: 0") for r in rows], "comes from calibration kit version 0"),
    (lambda rows: rows[:7] + [rows[7].replace(rows[7].split(",")[2], "fast")] + rows[8:], "not a positive number"),
    (lambda rows: ["# kit: 1", "a,b", "1,2"], "has no id and median_s columns"),
])
def test_a_damaged_results_file_is_one_line(tmp_path, edit, words):
    path = made_up(tmp_path)
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    with pytest.raises(TargetError, match=words):
        kit.read_measurements(path)


def test_an_accelerator_is_not_calibrated_from_cpu_timings(tmp_path):
    with pytest.raises(TargetError, match="is not a CPU"):
        kit.calibrated_target(load_target("eyeriss-like"), kit.read_measurements(made_up(tmp_path)), "x")

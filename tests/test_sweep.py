"""Sweep specs and the grid of targets they make: parsing, aliases, and one clear error for every bad spec."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models import load_target
from cost_models.area import hardware_figures
from hwsearch.errors import HwsearchError
from hwsearch.codesign.sweep import MAX_POINTS, Sweep, SweepError, build_grid, format_value


@pytest.mark.parametrize("text, key, values", [
    ("glb_kb=64,128,256", "glb_kb", (64, 128, 256)),
    ("glb_kb=64:512:x2", "glb_kb", (64, 128, 256, 512)),
    ("glb_kb=64:500:x2", "glb_kb", (64, 128, 256)),                # stop need not be hit
    ("x=0:64:+16", "x", (0, 16, 32, 48, 64)),
    ("x=0.1:0.5:+0.1", "x", (0.1, 0.2, 0.3, 0.4, 0.5)),            # no 0.30000000000000004
    ("x=16,64:256:x4, 1024", "x", (16, 64, 256, 1024)),            # lists of numbers and ranges
    ("dram.bandwidth_bytes_per_s=7.2e8,1.44e9", "dram.bandwidth_bytes_per_s", (720000000, 1440000000)),
    ("pe=12x14,16x16", "pe", ((12, 14), (16, 16))),
    ("pe=16x8x8", "pe", ((16, 8, 8),)),
])
def test_sweep_specs_parse_to_their_values(text, key, values):
    sweep = Sweep.parse(text)
    assert sweep.key == key and sweep.values == values
    assert all(isinstance(v, int) for v in sweep.values if isinstance(v, (int, float)) and float(v).is_integer())


@pytest.mark.parametrize("text, message", [
    ("glb_kb", "is not KEY=VALUES"),
    ("glb_kb=", "is not KEY=VALUES"),
    ("=64", "is not KEY=VALUES"),
    ("glb kb=64", "is not a parameter name or dotted path"),
    ("glb_kb=64,64", "lists 64 twice"),
    ("glb_kb=64,abc", "'abc' is neither a non-negative number nor a range"),
    ("glb_kb=-64", "is neither a non-negative number"),
    ("glb_kb=64:512", "is neither a non-negative number nor a range"),
    ("glb_kb=512:64:x2", "must run upwards"),
    ("glb_kb=0:64:x2", "needs start > 0 and a factor > 1"),
    ("glb_kb=1:64:x1", "needs start > 0 and a factor > 1"),
    ("glb_kb=0:64:+0", "needs a step > 0"),
    ("glb_kb=1:1e9:+1", "gives more than 1000 values"),
    ("glb_kb=1:1e200:x1.01", "gives more than 1000 values"),
    ("glb_kb=1:1e300:x2", "too large"),
    ("glb_kb=1e999", "too large"),
    ("pe=12*14", "pe takes PE array shapes"),
    ("pe=0x14", "at least 1"),
    ("pe=64", "pe takes PE array shapes"),
])
def test_bad_sweep_specs_say_what_is_wrong_and_give_an_example(text, message):
    with pytest.raises(SweepError) as err:
        Sweep.parse(text)
    assert message in str(err.value) and "\n" not in str(err.value)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="glb_kpe=0123456789.,:x+-eE ", max_size=24))
def test_any_text_is_a_sweep_or_one_sweep_error(text):
    try:
        sweep = Sweep.parse(text)
    except SweepError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert sweep.values and len(set(sweep.values)) == len(sweep.values) <= MAX_POINTS


@settings(max_examples=200, deadline=None)
@given(start=st.integers(1, 10**6), factor=st.integers(2, 10), count=st.integers(1, 12))
def test_geometric_ranges_hold_every_power_up_to_stop(start, factor, count):
    stop = start * factor ** (count - 1)
    values = Sweep.parse(f"x={start}:{stop}:x{factor}").values
    assert values == tuple(start * factor ** i for i in range(count))


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 1000), step=st.integers(1, 100), count=st.integers(1, 50), extra=st.integers(0, 99))
def test_arithmetic_ranges_step_from_start_and_never_pass_stop(start, step, count, extra):
    stop = start + step * (count - 1) + extra % step
    values = Sweep.parse(f"x={start}:{stop}:+{step}").values
    assert values == tuple(start + step * i for i in range(count)) and max(values) <= stop


def test_grid_is_the_product_of_the_sweeps_each_point_a_validated_target():
    points = build_grid("eyeriss-like", [Sweep.parse("glb_kb=64,256"), Sweep.parse("pe=12x14,16x16")])
    assert [p.id for p in points] == ["p01", "p02", "p03", "p04"]
    assert [p.label for p in points] == ["glb_kb=64, pe=12x14", "glb_kb=64, pe=16x16", "glb_kb=256, pe=12x14",
                                         "glb_kb=256, pe=16x16"]
    big = points[3].target
    assert big.name == "eyeriss-like[glb_kb=256,pe=16x16]" and big.memory[3].size_bytes == 256 * 1024
    path = big.compute[0]
    assert [u.size for u in path.unroll] == [16, 16] and path.macs_per_cycle == 256
    base = load_target("eyeriss-like")
    for level, before in zip(big.memory[:3], base.memory[:3]):     # the PE scratchpads: one per PE,
        assert level.instances == 256                              # the same bandwidth per PE
        assert level.bandwidth_bytes_per_cycle / 256 == pytest.approx(before.bandwidth_bytes_per_cycle / 168)
    assert big.memory[3].bandwidth_bytes_per_cycle == 200                      # the global buffer's is kept
    areas = [hardware_figures(p.target)["area_mm2"] for p in points]
    assert areas[0] < areas[1] and areas[0] < areas[2] and max(areas) == areas[3]
    assert points[0].data["memory"][3]["size_bytes"] == 65536 and points[0].data["name"] == points[0].target.name


def test_dotted_paths_and_three_dimensional_pe_arrays():
    points = build_grid("simba-like", [Sweep.parse("pe=8x8x8,16x8x8"), Sweep.parse("dram.read_pj_per_byte=10,20")])
    assert len(points) == 4 and [p.target.compute[0].macs_per_cycle for p in points] == [512, 512, 1024, 1024]
    assert points[0].target.compute[1].macs_per_cycle == 128          # the 16-bit path keeps its quarter rate
    assert points[0].target.memory[3].instances == 8                  # input buffer: one per PE
    assert [p.target.dram.read_pj_per_byte for p in points] == [10, 20, 10, 20]
    assert format_value((16, 8, 8)) == "16x8x8" and format_value(7.2e8) == "7.2e+08" and format_value(64) == "64"


@pytest.mark.parametrize("target, specs, message", [
    ("eyeriss-like", [], "codesign needs at least one --sweep"),
    ("eyeriss-like", ["glb_kb=64", "glb_kb=128"], "--sweep glb_kb is given twice"),
    ("eyeriss-like", ["glb_kb=64", "memory.glb.size_bytes=65536"], "both set memory.3.size_bytes"),
    ("eyeriss-like", ["pe=12x14", "compute.0.macs_per_cycle=10"], "both set compute.0.macs_per_cycle"),
    ("eyeriss-like", ["pe=12x14x2"], "has 2 dimensions (rows, cols), so give 2 factors, e.g. pe=12x14"),
    ("eyeriss-like", ["memory.glbx.size_bytes=1"], "or by name (w_spad, i_spad, psum_spad, glb)"),
    ("eyeriss-like", ["memory.glb.name=1"], "not a number: only numeric fields can be swept"),
    ("eyeriss-like", ["glb_kb=0,64"], "1 of 2 hardware points are not valid targets: eyeriss-like with glb_kb=0 is "
                                      "invalid: memory.3.size_bytes: 0 bytes is not a plausible figure"),
    ("eyeriss-like", ["glb_kb=0.0001"], "Input should be a valid integer"),
    ("eyeriss-like", ["x=1:1000:+1", "y=1:1000:+1"], "the sweeps make 1,000,000 points, more than 1000"),
    ("cortex-a76", ["glb_kb=64"], "cortex-a76 is a cpu: sweep a level by its path instead, e.g. memory.l3.size_bytes"),
    ("cortex-a76", ["pe=4x4"], "sweep compute.N.macs_per_cycle instead"),
    ("eyeriss-lik", ["glb_kb=64"], "unknown target 'eyeriss-lik': did you mean 'eyeriss-like'?"),
])
def test_a_bad_grid_is_refused_whole_with_one_line(target, specs, message):
    with pytest.raises(HwsearchError) as err:
        build_grid(target, [Sweep.parse(s) for s in specs])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_many_bad_points_are_summarised():
    with pytest.raises(SweepError, match=r"5 of 6 hardware points are not valid targets: .*; and 2 more points$"):
        build_grid("eyeriss-like", [Sweep.parse("clock_hz=0,2e8"), Sweep.parse("memory.glb.size_bytes=0,0.5,1")])

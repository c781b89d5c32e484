import re

import pytest

from cost_models import available_targets, load_target
from hwsearch.errors import TargetError

VALID = """\
name: tiny-cpu
kind: cpu
clock_hz: 1.0e9
compute:
  - {dtype: fp32, max_weight_bits: 32, operand_bits: 32, macs_per_cycle: 4, pj_per_mac: 4.6, activation_bytes: 4}
memory:
  - {name: l1, size_bytes: 32768, bandwidth_bytes_per_cycle: 32, read_pj_per_byte: 1.25, write_pj_per_byte: 1.25}
dram: {bandwidth_bytes_per_s: 1.0e10, read_pj_per_byte: 160, write_pj_per_byte: 160}
cpu: {gemm_efficiency: 0.8, depthwise_efficiency: 0.3, register_tile: [8, 12], reduction_overhead: 4,
      layer_overhead_s: 1.0e-5}
"""


def test_builtin_cortex_a76_loads_with_its_cited_figures():
    target = load_target("cortex-a76")
    assert "cortex-a76" in available_targets()
    assert target.kind == "cpu" and target.clock_hz == 2.84e9
    assert target.compute_for(32).macs_per_cycle == 8 and target.compute_for(8).macs_per_cycle == 32
    assert target.compute_for(4).dtype == "int8"
    assert [m.name for m in target.memory] == ["registers", "l1d", "l2", "l3"]


def test_every_builtin_target_cites_a_source_for_every_number():
    from cost_models.target import TARGETS_DIR
    number = re.compile(r"^[\s-]*\w+:\s*[-+]?\d[\d.e+_]*\s*(#.*)?$")
    checked = 0
    for path in TARGETS_DIR.glob("*.yaml"):
        for line in path.read_text().splitlines():
            match = number.match(line)
            if match:
                checked += 1
                assert match.group(1), f"{path.name}: {line.strip()!r} has no source comment"
    assert checked >= 10


def test_a_target_file_path_works(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(VALID)
    assert load_target(str(path)).name == "tiny-cpu"


@pytest.mark.parametrize("text, message", [
    (VALID.replace("kind: cpu", "kind: cpu\nkind: gpu"), "duplicate key 'kind'"),
    (VALID.replace("clock_hz: 1.0e9", "clock_hz: -1"), "clock_hz: -1 Hz is not a plausible figure"),
    (VALID.replace("clock_hz: 1.0e9\n", ""), "clock_hz: Field required"),
    (VALID.replace("clock_hz: 1.0e9", "clock_hz: .inf"), "clock_hz: inf Hz is not a plausible figure"),
    (VALID.replace("cpu: {", "gpu: {"), "gpu"),
    (VALID.replace("memory:\n  - {name: l1,", "memory:\n  - {name: dram,"), "names must be distinct and not 'dram'"),
    (VALID + "colour: blue\n", "colour: Extra inputs are not permitted"),
    ("name: [unclosed\n", "not valid YAML at line"),
    ("- just\n- a list\n", "holds a list, not a mapping of keys"),
    ("", "is empty; write the target's keys"),
    (VALID.replace("max_weight_bits: 32", "max_weight_bits: 8"), "no compute path takes 32-bit"),
    (VALID.replace("bandwidth_bytes_per_s: 1.0e10", "bandwidth_bytes_per_s: 1.0e-300"), "1e-300 bytes/s is not a plausible"),
    (VALID.replace("clock_hz: 1.0e9", "clock_hz: 1e400"), "clock_hz: inf Hz"),
    (VALID.replace("size_bytes: 32768", "size_bytes: 1.0e+300"), "size_bytes"),
    (VALID.replace("memory:\n  - {name: l1, size_bytes: 32768, bandwidth_bytes_per_cycle: 32, read_pj_per_byte: 1.25, "
                   "write_pj_per_byte: 1.25}", "memory: []"), "memory: Tuple should have at least 1 item"),
])
def test_bad_target_files_name_every_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TargetError, match=message):
        load_target(str(path))


def test_all_problems_are_reported_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(VALID.replace("clock_hz: 1.0e9", "clock_hz: 0").replace("kind: cpu", "kind: fpga"))
    with pytest.raises(TargetError, match="kind.*clock_hz"):
        load_target(str(path))


def test_unknown_target_lists_the_choices():
    with pytest.raises(TargetError, match="unknown target 'cortex-a99': did you mean 'cortex-a76'\\? choose one of a100, adreno-640"):
        load_target("cortex-a99")


def test_non_utf8_target_file_is_a_clear_error(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(TargetError, match="not UTF-8"):
        load_target(str(path))


# ---- fuzzing: any file is a valid target or one TargetError, never another exception -----------------

import math  # noqa: E402

import yaml  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from cost_models.target import parse_target  # noqa: E402

ODD_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-10**400, max_value=10**400),
    st.sampled_from([0, -1, 1e-300, 1e300, 2**64, ".inf", "-.nan", "fast", "", None, True, [], {}, [1, 2]]),
    st.text(max_size=12))


def _paths(node, prefix=()):
    """Every (path, value) in a nested dict/list."""
    yield prefix, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, prefix + (key,))


def _check_target_or_one_error(text: str) -> None:
    try:
        target = parse_target(text, source="fuzz.yaml")
    except TargetError as exc:
        assert str(exc).startswith("target file fuzz.yaml ") and "\n" not in str(exc)
    else:
        for _, value in _paths(target.model_dump()):
            if isinstance(value, float):
                assert math.isfinite(value) and abs(value) <= 1e15
        assert 1e3 <= target.clock_hz <= 1e11 and 1e3 <= target.dram.bandwidth_bytes_per_s <= 1e15
        assert any(path.max_weight_bits >= 32 for path in target.compute)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_target_with_any_value_replaced_or_removed_loads_or_is_one_error(data):
    document = yaml.safe_load(VALID)
    path = data.draw(st.sampled_from([p for p, _ in _paths(document) if p]))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()):
        parent[path[-1]] = data.draw(ODD_VALUES)
    elif isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    _check_target_or_one_error(yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_any_text_as_a_target_file_loads_or_is_one_error(text):
    _check_target_or_one_error(text)


# ---- variants: numeric fields set by dotted path (hwsearch codesign) ----------------------------------

def test_dotted_paths_reach_list_items_by_index_or_by_name():
    from cost_models.target import load_raw_target, resolve_field

    data, target = load_raw_target("eyeriss-like")
    assert resolve_field(data, "memory.glb.size_bytes") == ("memory.3.size_bytes", 110592)
    assert resolve_field(data, "memory.3.size_bytes") == ("memory.3.size_bytes", 110592)
    assert resolve_field(data, "compute.fixed16.unroll.cols.size") == ("compute.0.unroll.1.size", 14)
    # PyYAML reads 2.0e8 as text; it is still a number to sweep (pydantic reads it as one too)
    assert resolve_field(data, "clock_hz") == ("clock_hz", target.clock_hz)


@pytest.mark.parametrize("path, message", [
    ("memory.glbx.size_bytes", "address an item by index 0 to 3 or by name (w_spad, i_spad, psum_spad, glb)"),
    ("memory.glb.size_byte", "did you mean 'size_bytes'?"),
    ("memory.glb.name", "is 'glb', not a number"),
    ("sparsity.zero_gating", "is True, not a number"),
    ("dram", "is a section, not a number"),
    ("clock_hz.x", "has no field 'x'"),
])
def test_a_dotted_path_that_leads_nowhere_numeric_says_why(path, message):
    from cost_models.target import load_raw_target, resolve_field

    data, _ = load_raw_target("eyeriss-like")
    with pytest.raises(TargetError, match=re.escape(message)):
        resolve_field(data, path)


def test_override_validates_like_a_file_and_reports_every_problem_at_once():
    from cost_models.target import load_raw_target, override_target

    data, base = load_raw_target("eyeriss-like")
    bigger = override_target(data, {"memory.glb.size_bytes": 262144, "clock_hz": 4e8}, source="test", name="big")
    assert bigger.memory[3].size_bytes == 262144 and bigger.clock_hz == 4e8 and bigger.name == "big"
    assert base.memory[3].size_bytes == 110592 and data["memory"][3]["size_bytes"] == 110592   # untouched
    with pytest.raises(TargetError) as err:
        override_target(data, {"memory.glb.size_bytes": 0.5, "clock_hz": 0}, source="eyeriss-like with a bad point")
    message = str(err.value)
    assert message.startswith("eyeriss-like with a bad point is invalid:")
    assert "clock_hz: 0 Hz is not a plausible figure" in message
    assert "memory.3.size_bytes: Input should be a valid integer" in message
    with pytest.raises(TargetError, match=re.escape("instances must equal the product of the sizes of ['rows', 'cols']")):
        override_target(data, {"memory.w_spad.instances": 100}, source="eyeriss-like with 100 filter spads")
    with pytest.raises(TargetError, match="has no key 'nope'.*is 'glb', not a number"):
        override_target(data, {"nope": 1, "memory.glb.name": 2}, source="two bad paths")

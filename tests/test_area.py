"""Hardware cost of a point: on-chip bytes, MAC units and the area estimate, by hand."""
import pytest

from cost_models import load_target
from cost_models.area import MAC_UM2, RF_UM2_PER_BYTE, SRAM_UM2_PER_BYTE, hardware_figures, mac_units
from cost_models.target import load_raw_target, override_target


def test_eyeriss_like_area_counts_pes_scratchpads_and_the_global_buffer():
    figures = hardware_figures(load_target("eyeriss-like"))
    private = 168 * (448 + 24 + 48)            # filter, ifmap and psum scratchpads, one set per PE
    assert figures["private_bytes"] == private and figures["shared_bytes"] == 110592
    assert figures["onchip_bytes"] == private + 110592 and figures["mac_units"] == 168
    expected = (168 * MAC_UM2 + private * RF_UM2_PER_BYTE + 110592 * SRAM_UM2_PER_BYTE) * 1e-6
    assert figures["area_mm2"] == pytest.approx(expected)
    assert 1.3 < figures["area_mm2"] < 1.5      # Accelergy's own Eyeriss-like example sums to 1.26 mm^2 at 32 nm


def test_area_grows_with_the_global_buffer_at_the_sram_figure():
    data, _ = load_raw_target("eyeriss-like")
    base = hardware_figures(load_target("eyeriss-like"))["area_mm2"]
    bigger_glb = override_target(data, {"memory.glb.size_bytes": 2 * 110592}, source="test")
    assert hardware_figures(bigger_glb)["area_mm2"] == pytest.approx(base + 110592 * SRAM_UM2_PER_BYTE * 1e-6)


def test_mac_units_are_the_physical_array_and_only_accelerators_get_an_area():
    assert mac_units(load_target("tpu-like")) == 256 * 256      # three paths share the same cells
    assert mac_units(load_target("simba-like")) == 16 * 8 * 8
    cpu = hardware_figures(load_target("cortex-a76"))
    assert cpu["area_mm2"] is None and cpu["onchip_bytes"] > 2 * 2**20

"""Whole-plan costs: fixed ops, weights that stay on chip, conversions between int8 and float layers."""
import pytest
import torch
from torch import nn

from cost_models import build_cost_table, make_cost_model, plan_costs
from cost_models.target import parse_target
from hwsearch.graph import LayerGraph
from hwsearch.compression import Option

CPU = """\
name: toy-int8-cpu
kind: cpu
clock_hz: 1.0e9
compute:
  - {dtype: fp32, max_weight_bits: 32, operand_bits: 32, activation_bytes: 4, macs_per_cycle: 4, pj_per_mac: 1.0}
  - {dtype: int8, max_weight_bits: 8, operand_bits: 8, activation_bytes: 1, macs_per_cycle: 16, pj_per_mac: 0.2}
memory:
  - {name: l1, size_bytes: 32768, bandwidth_bytes_per_cycle: 64, read_pj_per_byte: 1.0, write_pj_per_byte: 1.0}
  - {name: l2, size_bytes: LAST, bandwidth_bytes_per_cycle: 32, read_pj_per_byte: 2.0, write_pj_per_byte: 2.0}
dram: {bandwidth_bytes_per_s: 1.0e9, read_pj_per_byte: 100.0, write_pj_per_byte: 100.0}
conversion_passes: 2.0
cpu: {gemm_efficiency: 1.0, depthwise_efficiency: 1.0, register_tile: [1, 1], reduction_overhead: 0,
      layer_overhead_s: 0}
"""


def toy(last_level_bytes: int, conversion_passes: float = 2.0):
    text = CPU.replace("LAST", str(last_level_bytes)).replace("conversion_passes: 2.0",
                                                              f"conversion_passes: {conversion_passes}")
    return make_cost_model("analytical", parse_target(text))


class Chain(nn.Module):
    """Four 1x1 convs, 64 channels, on 8x8: 16 KiB of fp32 weights each."""

    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(*(nn.Conv2d(64, 64, 1, bias=False) for _ in range(4)))

    def forward(self, x):
        return self.convs(x)


@pytest.fixture
def chain():
    torch.manual_seed(0)
    model = Chain().eval()
    return LayerGraph.trace(model, torch.zeros(1, 64, 8, 8))


def test_weights_that_fit_the_last_level_stay_there_between_inferences(chain):
    roomy, cramped = toy(4 << 20), toy(32 << 10)     # 64 KiB of weights; 32 KiB of maps fill the small one
    warm, cold = plan_costs(roomy, chain, {}), plan_costs(cramped, chain, {})
    assert warm["warm_share"] == 1.0 and cold["warm_share"] == 0.0
    assert warm["dram_bytes"] < cold["dram_bytes"]
    assert warm["energy_j"] < cold["energy_j"] and warm["latency_s"] <= cold["latency_s"]


def test_a_plan_that_shrinks_into_the_cache_gets_faster_than_its_bytes_alone_say(chain):
    model = toy(56 << 10)                            # room for 24 KiB of weights beside 32 KiB of maps
    fp32, int8 = plan_costs(model, chain, {}), plan_costs(model, chain, {f"convs.{i}": Option(bits=8) for i in range(4)})
    assert fp32["warm_share"] < 1.0 == int8["warm_share"]
    assert int8["dram_bytes"] < fp32["dram_bytes"] / 4           # 4x fewer bytes, and those stay on chip


def test_each_change_of_activation_width_costs_conversion_passes(chain):
    model = toy(4 << 20)
    names = [f"convs.{i}" for i in range(4)]
    together = plan_costs(model, chain, {n: Option(bits=8) for n in names[:2]})        # 2 changes: in and mid
    alternating = plan_costs(model, chain, {names[0]: Option(bits=8), names[2]: Option(bits=8)})   # 4 changes
    assert alternating["latency_s"] > together["latency_s"]
    free = toy(4 << 20, conversion_passes=0.0)
    base = plan_costs(free, chain, {names[0]: Option(bits=8), names[2]: Option(bits=8)})
    one_change = (alternating["latency_s"] - base["latency_s"]) / 4
    assert one_change > 0
    assert (together["latency_s"] - plan_costs(free, chain, {n: Option(bits=8) for n in names[:2]})["latency_s"]
            == pytest.approx(2 * one_change))


def test_a_table_adds_the_same_as_pricing_the_plan_alone(chain):
    model = toy(64 << 10)
    layers = chain.compressible()
    options = {l.name: [Option(), Option(bits=8), Option(rank=8)] for l in layers}
    table = build_cost_table(model, layers, options, fixed_bytes=100, graph=chain)
    choice = {l.name: i % 3 for i, l in enumerate(layers)}
    plan = {l.name: options[l.name][i] for l, i in zip(layers, choice.values())}
    direct = plan_costs(model, chain, plan, fixed_bytes=100)
    totals = table.totals(choice)
    for key in ("latency_s", "energy_j", "dram_bytes", "size_bytes"):
        assert totals[key] == pytest.approx(direct[key])


def test_a_runtime_that_skips_padding_runs_a_3x3_conv_on_a_1x1_map_as_its_centre_tap():
    text = CPU.replace("LAST", str(4 << 20)).replace("layer_overhead_s: 0}", "layer_overhead_s: 0, skips_padding: true}")
    skipping, padded = make_cost_model("analytical", parse_target(text)), toy(4 << 20)
    model = nn.Sequential(nn.Conv2d(512, 512, 3, padding=1, bias=False)).eval()
    conv = LayerGraph.trace(model, torch.zeros(1, 512, 1, 1)).compressible()[0]
    assert skipping.layer_cost(conv).macs == conv.macs // 9
    assert padded.layer_cost(conv).macs == conv.macs
    assert skipping.layer_cost(conv).dram_bytes < padded.layer_cost(conv).dram_bytes / 4


def test_with_the_proxy_tables_sizes_the_size_column_is_the_file_size(tmp_path):
    """Sparse positions and codebook indices are coded by their data: the size the search reads is measured
    on the fitted options, and the exported file has exactly that size."""
    import copy

    from hwsearch.export import artifact
    from hwsearch.compression import apply_
    from hwsearch.proxy import build_proxy_table
    torch.manual_seed(0)
    model = Chain().eval()
    graph = LayerGraph.trace(model, torch.zeros(1, 64, 8, 8))
    layers = graph.compressible()
    grid = [Option(sparsity=0.95, bits=4, codebook=16), Option(method="lowrank_sparse", rank=4, density=0.02,
                                                               data_aware=True), Option(rank=8, bits=6)]
    options = {l.name: grid for l in layers}
    calibration = torch.randn(16, 64, 8, 8)
    proxy = build_proxy_table(model, layers, options, calibration)
    names = [l.name for l in layers]
    spec = {"builder": "unused:builder"}
    fixed = artifact.fixed_bytes(model, model_spec=spec, layer_names=names)
    table = build_cost_table(toy(4 << 20), layers, options, fixed, graph, proxy.sizes)
    estimated = build_cost_table(toy(4 << 20), layers, options, fixed, graph)
    for i, name in enumerate(names):
        choice = {n: (i + j) % len(grid) for j, n in enumerate(names)}
        plan = {n: grid[k] for n, k in choice.items()}
        compressed = apply_(copy.deepcopy(model), plan, calibration=calibration)
        written = artifact.save(compressed, tmp_path / "m.hws", model_spec=spec, layer_names=names)
        assert written == table.totals(choice)["size_bytes"] < estimated.totals(choice)["size_bytes"]

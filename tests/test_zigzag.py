"""The ZigZag backend: the cost-model contract on every accelerator target, and its disk cache."""
import json
import sys

import numpy as np
import pytest

pytest.importorskip("zigzag", reason="the zigzag backend needs `pip install zigzag-dse six`")

import cost_models.zigzag as zz  # noqa: E402
from cost_models import available_targets, load_target  # noqa: E402
from cost_models.target import Compute, Unroll  # noqa: E402
from cost_models.zigzag import ZigZagCostModel  # noqa: E402
from hwsearch.errors import TargetError  # noqa: E402
from hwsearch.graph import Layer  # noqa: E402
from hwsearch.compression import Option  # noqa: E402

ACCELERATORS = [name for name in available_targets() if load_target(name).kind == "accelerator"]
LPF_LIMIT = 2      # a coarse search keeps the whole file well under a minute; the contract holds at any limit


def linear(n_in: int, n_out: int) -> Layer:
    return Layer(f"fc{n_in}x{n_out}", "linear", (n_out, n_in), (1, n_in), (1, n_out), macs=n_in * n_out)


def conv(c_in: int, c_out: int, size: int, k: int = 3) -> Layer:
    return Layer(f"conv{c_in}x{c_out}", "conv", (c_out, c_in, k, k), (1, c_in, size, size), (1, c_out, size, size),
                 1, (1, 1), (k // 2, k // 2), (1, 1), macs=size * size * c_out * c_in * k * k)


@pytest.fixture(params=ACCELERATORS)
def target(request):
    return load_target(request.param)


@pytest.fixture
def calls(monkeypatch):
    """Counts ZigZag runs (every cache miss is one)."""
    count = {"n": 0}
    simulate = zz._simulate

    def counting(job):
        count["n"] += 1
        return simulate(job)

    monkeypatch.setattr(zz, "_simulate", counting)
    return count


def model(target, cache_dir):
    return ZigZagCostModel(target, lpf_limit=LPF_LIMIT, cache_dir=cache_dir)


@pytest.mark.parametrize("layer", [conv(8, 16, 8), linear(64, 32)], ids=["conv", "linear"])
def test_costs_are_positive_finite_and_complete(target, layer, tmp_path):
    costs = model(target, tmp_path).price([(layer, Option()), (layer, Option(bits=8))])
    assert costs.levels == tuple(target.levels)
    assert np.all(np.isfinite(costs.latency_s)) and np.all(costs.latency_s > 0)
    assert np.all(np.isfinite(costs.energy_j)) and np.all(costs.energy_j > 0)
    assert np.all(costs.reads >= 0) and np.all(costs.writes >= 0)
    assert np.all(costs.reads[:, -1] > 0), "weights and inputs come from DRAM"
    assert costs.energy_parts_j.sum(axis=1) == pytest.approx(costs.energy_j)
    assert list(costs.macs) == [layer.macs, layer.macs]
    cost = costs.row(0)
    assert cost.bottleneck in ("compute", *target.levels)


@pytest.mark.parametrize("small, large", [(conv(8, 8, 8), conv(8, 16, 8)), (linear(64, 16), linear(64, 32))],
                         ids=["conv", "linear"])
def test_fewer_macs_never_cost_more(target, small, large, tmp_path):
    costs = model(target, tmp_path).price([(small, Option()), (large, Option())])
    assert costs.macs[0] < costs.macs[1]
    assert costs.latency_s[0] <= costs.latency_s[1]
    assert costs.energy_j[0] <= costs.energy_j[1]


def test_a_second_call_reads_the_cache(target, calls, tmp_path):
    pairs = [(conv(8, 16, 8), Option()), (conv(8, 16, 8), Option(rank=4)), (linear(64, 32), Option())]
    first = model(target, tmp_path).price(pairs)
    assert calls["n"] == 4                           # a low-rank option is two nests
    second = model(target, tmp_path).price(pairs)   # a new instance: only the disk cache is shared
    assert calls["n"] == 4
    assert np.array_equal(first.latency_s, second.latency_s)
    assert np.array_equal(first.reads, second.reads)


def test_warm_weights_do_not_come_from_dram(target, tmp_path):
    pairs = [(conv(8, 16, 8), Option())]
    cold = model(target, tmp_path).price(pairs)
    warm = ZigZagCostModel(target, warm=True, lpf_limit=LPF_LIMIT, cache_dir=tmp_path).price(pairs)
    weights = 16 * 8 * 9 * target.compute_for(32).operand_bits / 8
    assert warm.caveats[0] == ""
    assert warm.reads[0, -1] == pytest.approx(max(0.0, cold.reads[0, -1] - weights), abs=0.02 * weights)


def test_an_energy_optimal_mapping_never_costs_more_energy(target, tmp_path):
    pairs = [(conv(8, 16, 8), Option())]
    fast = model(target, tmp_path).price(pairs)
    frugal = ZigZagCostModel(target, opt="energy", lpf_limit=LPF_LIMIT, cache_dir=tmp_path).price(pairs)
    assert frugal.energy_j[0] <= fast.energy_j[0] * 1.01
    assert frugal.latency_s[0] >= fast.latency_s[0] * 0.99


@pytest.mark.parametrize("damage", ["truncate", "garbage", "negative"])
def test_a_corrupt_cache_entry_is_recomputed(target, calls, tmp_path, damage):
    pairs = [(linear(64, 32), Option())]
    first = model(target, tmp_path).price(pairs)
    (entry,) = tmp_path.glob("*.json")
    text = entry.read_text()
    if damage == "truncate":
        entry.write_text(text[: len(text) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"\x00\xff not json")
    else:
        data = json.loads(text)
        data["latency_cycles"] = -1.0
        entry.write_text(json.dumps(data))
    again = model(target, tmp_path).price(pairs)
    assert calls["n"] == 2
    assert again.latency_s == pytest.approx(first.latency_s)
    assert json.loads(entry.read_text())["latency_cycles"] > 0     # the entry was rewritten whole
    assert not list(tmp_path.glob("*.tmp"))


def test_what_zigzag_cannot_express_is_flagged(target, tmp_path):
    layer = conv(8, 16, 8)
    skip_or_gate = target.sparsity.skips != "none" or target.sparsity.zero_gating
    costs = model(target, tmp_path).price([(layer, Option()), (layer, Option(sparsity=0.5, bits=4))])
    assert costs.caveats[0] == ""
    assert ("unpacked" in costs.caveats[1]) == (target.weights_move == "encoded")
    assert ("dense" in costs.caveats[1]) == skip_or_gate


def test_cpu_targets_and_a_missing_zigzag_are_refused_with_the_fix(monkeypatch, tmp_path):
    with pytest.raises(TargetError, match="analytical"):
        ZigZagCostModel(load_target("cortex-a76"), cache_dir=tmp_path)
    monkeypatch.setitem(sys.modules, "zigzag", None)
    with pytest.raises(ImportError, match="pip install zigzag-dse six"):
        ZigZagCostModel(load_target(ACCELERATORS[0]), cache_dir=tmp_path)


def test_the_spatial_mapping_is_the_analytical_models():
    path = load_target("eyeriss-like").compute[0]       # rows take FY then C; columns OY then K
    sizes = {"B": 1, "G": 1, "K": 64, "C": 32, "OY": 7, "OX": 7, "FY": 3, "FX": 3}
    assert zz._greedy_unrolling(path, sizes) == ({"D1": ["FY, 3", "C, 4"], "D2": ["OY, 7", "K, 2"]}, True)
    sizes.update(FY=1, FX=1, OY=1)
    assert zz._greedy_unrolling(path, sizes) == ({"D1": ["C, 12"], "D2": ["K, 14"]}, True)


def test_a_loop_spread_beyond_its_size_is_cut_and_reported():
    path = Compute(dtype="int8", max_weight_bits=8, operand_bits=8, activation_bytes=1, macs_per_cycle=32,
                   pj_per_mac=1.0, unroll=[Unroll(name="pes", size=16, dims=("K",)),
                                           Unroll(name="lanes", size=2, dims=("K",))])
    sizes = {"B": 1, "G": 1, "K": 24, "C": 8, "OY": 1, "OX": 1, "FY": 1, "FX": 1}
    assert zz._greedy_unrolling(path, sizes) == ({"D1": ["K, 16"], "D2": ["K, 1"]}, False)
    sizes["K"] = 32
    assert zz._greedy_unrolling(path, sizes) == ({"D1": ["K, 16"], "D2": ["K, 2"]}, True)

"""The analytical cost model: hand-computable cases, then the direction of every compression effect on every target."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from cost_models import Cost, available_targets, load_target, make_cost_model
from cost_models.target import parse_target
from hwsearch.compression import Geometry, Option, estimate_layer_nbytes, layer_options
from hwsearch.graph import Layer, LayerGraph

# One cache level, no kernel losses, 1 GHz: every figure below can be checked by hand.
TOY = """\
name: toy-cpu
kind: cpu
clock_hz: 1.0e9
compute:
  - {dtype: fp32, max_weight_bits: 32, operand_bits: 32, activation_bytes: 4, macs_per_cycle: 4, pj_per_mac: 1.0}
memory:
  - {name: l1, size_bytes: 16384, bandwidth_bytes_per_cycle: 64, read_pj_per_byte: 1.0, write_pj_per_byte: 1.0}
dram: {bandwidth_bytes_per_s: 1.0e10, read_pj_per_byte: 100.0, write_pj_per_byte: 100.0}
activations_stay_on_chip: false
cpu: {gemm_efficiency: 1.0, depthwise_efficiency: 1.0, register_tile: [1, 1], reduction_overhead: 0,
      layer_overhead_s: 0}
"""


def linear(n_in: int, n_out: int) -> Layer:
    return Layer(f"fc{n_in}x{n_out}", "linear", (n_out, n_in), (1, n_in), (1, n_out), macs=n_in * n_out)


def conv(c_in: int, c_out: int, size: int, k: int = 3, stride: int = 1, groups: int = 1) -> Layer:
    out = (size + 2 * (k // 2) - k) // stride + 1
    return Layer(f"conv{c_in}x{c_out}", "conv", (c_out, c_in // groups, k, k), (1, c_in, size, size),
                 (1, c_out, out, out), groups, (stride, stride), (k // 2, k // 2), (1, 1),
                 macs=out * out * c_out * (c_in // groups) * k * k)


def layer_bytes(layer, option):
    """Bytes of the layer in the file, from shapes (exact for these options: no sparse positions coded by data)."""
    return estimate_layer_nbytes(Geometry.of(layer), option, layer.has_bias)


@pytest.fixture
def toy():
    return make_cost_model("analytical", parse_target(TOY))


# ---- hand-computable cases ----------------------------------------------------------------------

def test_a_layer_that_fits_the_buffer_moves_each_tensor_once(toy):
    layer = linear(32, 16)                          # 2 KiB of weights: all of it fits in 16 KiB
    cost = toy.layer_cost(layer)
    weights = layer_bytes(layer, Option())
    assert cost.reads["dram"] == pytest.approx(weights + 32 * 4)
    assert cost.writes["dram"] == pytest.approx(16 * 4)
    assert cost.macs == 512
    compute_s, dram_s = 512 / (4 * 1e9), (weights + 48 * 4) / 1e10
    assert cost.latency_s == pytest.approx(max(compute_s, dram_s))
    mac_pj, dram_pj = 512 * 1.0, (weights + 48 * 4) * 100.0
    assert cost.energy_parts_j["mac"] == pytest.approx(mac_pj * 1e-12)
    assert cost.energy_parts_j["dram"] == pytest.approx(dram_pj * 1e-12)


def test_a_layer_that_streams_from_dram_is_bound_by_dram(toy):
    layer = linear(4096, 4096)                      # 64 MiB of weights through a 16 KiB buffer
    cost = toy.layer_cost(layer)
    weights = layer_bytes(layer, Option())
    assert cost.bottleneck == "dram"
    assert weights <= cost.reads["dram"] <= weights + 3 * 4096 * 4   # weights once, the input a few times
    assert cost.latency_s == pytest.approx(cost.dram_bytes / 1e10)


def test_a_layer_with_much_reuse_is_compute_bound(toy):
    layer = conv(16, 16, 32)                        # 2.4 M MACs on 9 KiB of weights and 64 KiB maps
    cost = toy.layer_cost(layer)
    assert cost.bottleneck == "compute"
    assert cost.latency_s == pytest.approx(layer.macs / 4e9)
    # the maps do not fit the 16 KiB buffer, so something is re-read, but far less than once per MAC
    compulsory = layer_bytes(layer, Option()) + 2 * 16 * 32 * 32 * 4
    assert compulsory <= cost.dram_bytes < 4 * compulsory


def test_costs_of_many_pairs_are_the_costs_of_each(toy):
    layers = [linear(32, 16), conv(16, 16, 32), linear(4096, 4096)]
    together = toy.price([(l, Option()) for l in layers])
    for i, layer in enumerate(layers):
        alone = toy.layer_cost(layer)
        assert together.row(i).latency_s == pytest.approx(alone.latency_s)
        assert together.row(i).energy_j == pytest.approx(alone.energy_j)


def test_unknown_cost_model_kind():
    with pytest.raises(ValueError, match="analytical"):
        make_cost_model("magic", load_target("cortex-a76"))


# ---- compression changes the cost as hardware does, on every built-in target --------------------

@pytest.fixture(params=available_targets())
def model(request):
    return make_cost_model("analytical", load_target(request.param))


def test_a_factorised_layer_costs_as_its_two_smaller_layers(model):
    big = conv(64, 64, 16)
    r = 16
    first = conv(64, r, 16)                          # r filters of the original kernel
    second = Layer("pointwise", "conv", (64, r, 1, 1), (1, r, 16, 16), (1, 64, 16, 16), 1, (1, 1), (0, 0), (1, 1),
                   macs=16 * 16 * 64 * r)
    factorised = model.layer_cost(big, Option(rank=r))
    parts = [model.layer_cost(first), model.layer_cost(second)]
    assert factorised.macs == sum(p.macs for p in parts)
    assert factorised.latency_s == pytest.approx(sum(p.latency_s for p in parts), rel=1e-3)
    assert factorised.energy_j == pytest.approx(sum(p.energy_j for p in parts), rel=1e-2)
    # the hidden map is written by the first and read by the second
    hidden_moved = sum(p.reads["dram"] + p.writes["dram"] for p in parts)
    assert factorised.dram_bytes == pytest.approx(hidden_moved, rel=1e-2)


def test_fewer_bits_never_store_or_move_more(model):
    for layer in (conv(64, 64, 16), linear(1024, 1024)):
        costs = [model.layer_cost(layer, Option(bits=b)) for b in (32, 8, 6, 4)]
        for more, fewer in zip(costs, costs[1:]):
            assert fewer.weight_bytes < more.weight_bytes
            assert fewer.dram_bytes <= more.dram_bytes


def test_sparsity_shrinks_storage_and_traffic_by_the_encoding(model):
    layer = linear(2048, 2048)                       # streams its weights on every target
    # 8-bit weights: a width every target computes at or above, so the file's bytes are what moves
    dense, sparse = (model.layer_cost(layer, Option(sparsity=s, bits=8)) for s in (0.0, 0.9))
    assert sparse.weight_bytes == layer_bytes(layer, Option(sparsity=0.9, bits=8)) < dense.weight_bytes
    if model.target.weights_move == "dense":         # the runtime expands the file into dense tensors at load
        assert sparse.dram_bytes == dense.dram_bytes
        return
    saved = dense.dram_bytes - sparse.dram_bytes
    assert saved == pytest.approx(dense.weight_bytes - sparse.weight_bytes, rel=0.05)


def test_no_target_skips_zeros_unless_it_says_so(model):
    layer = conv(64, 64, 16)
    dense, sparse = (model.layer_cost(layer, Option(sparsity=s)) for s in (0.0, 0.75))
    if model.target.sparsity.skips == "none":
        assert sparse.macs == dense.macs
    else:
        assert sparse.macs < dense.macs


def test_every_cost_is_positive_and_finite_on_every_option(model, tiny, example):
    graph = LayerGraph.trace(tiny, example)
    pairs = [(l, o) for l in graph.compressible() for o in layer_options(l)] + [(op, Option()) for op in graph.fixed_ops()]
    costs = model.price(pairs)
    assert np.all(np.isfinite(costs.latency_s)) and np.all(costs.latency_s > 0)
    assert np.all(np.isfinite(costs.energy_j)) and np.all(costs.energy_j > 0)
    assert np.all(costs.reads >= 0) and np.all(costs.writes >= 0)
    assert costs.energy_j == pytest.approx(costs.energy_parts_j.sum(axis=1))


# ---- the paths a target really has ----------------------------------------------------------------

def test_int8_runs_faster_than_fp32_on_the_a76_and_sub_byte_weights_pay_to_widen():
    a76 = make_cost_model("analytical", load_target("cortex-a76"))
    pointwise = conv(128, 128, 28, k=1)
    fp32, int8, int4 = (a76.layer_cost(pointwise, Option(bits=b)) for b in (32, 8, 4))
    assert int8.latency_s < fp32.latency_s / 2         # SDOT: 4x the fp32 MACs per cycle
    assert int4.latency_s > int8.latency_s             # no native int4: codes are widened to int8 first
    assert int4.dram_bytes < int8.dram_bytes
    # a 3x3 conv keeps less of the int8 gain: fp32 runs it with Winograd, int8 does not
    three = conv(128, 128, 28)
    gain_3x3 = a76.layer_cost(three).latency_s / a76.layer_cost(three, Option(bits=8)).latency_s
    assert gain_3x3 < fp32.latency_s / int8.latency_s


def test_native_int4_tensor_cores_pay_nothing_to_widen():
    a100 = make_cost_model("analytical", load_target("a100"))
    layer = conv(256, 256, 14)
    int8, int4 = (a100.layer_cost(layer, Option(bits=b)) for b in (8, 4))
    assert int4.latency_s <= int8.latency_s


def test_a_zero_skipping_target_skips_only_above_its_threshold():
    text = TOY + "sparsity: {skips: unstructured, min_sparsity: 0.5}\n"
    skipper = make_cost_model("analytical", parse_target(text))
    layer = conv(16, 16, 32)
    assert skipper.layer_cost(layer, Option(sparsity=0.25)).macs == layer.macs
    assert skipper.layer_cost(layer, Option(sparsity=0.75)).macs == layer.macs // 4


def test_zero_gating_saves_energy_but_no_time():
    eyeriss = make_cost_model("analytical", load_target("eyeriss-like"))
    layer = conv(64, 64, 16)
    dense, sparse = (eyeriss.layer_cost(layer, Option(sparsity=s, bits=8)) for s in (0.0, 0.75))
    assert sparse.energy_parts_j["mac"] == pytest.approx(dense.energy_parts_j["mac"] / 4, rel=1e-3)
    assert sparse.macs == dense.macs


def test_batch_multiplies_the_work_and_shares_the_weights():
    single = make_cost_model("analytical", load_target("a100"))
    batched = make_cost_model("analytical", load_target("a100"), batch=32)
    layer = conv(256, 256, 14)
    one, many = single.layer_cost(layer), batched.layer_cost(layer)
    assert many.macs == 32 * one.macs
    assert one.latency_s < many.latency_s < 32 * one.latency_s


def test_depthwise_layers_reach_a_smaller_share_of_peak_on_the_a76():
    a76 = make_cost_model("analytical", load_target("cortex-a76"))
    dense = a76.layer_cost(conv(96, 96, 28, k=1))
    depthwise = a76.layer_cost(conv(96, 96, 28, groups=96))
    assert depthwise.latency_s / depthwise.macs > 2 * dense.latency_s / dense.macs


def test_cost_is_a_frozen_value():
    cost = make_cost_model("analytical", parse_target(TOY)).layer_cost(linear(8, 8))
    assert isinstance(cost, Cost)
    with pytest.raises(AttributeError):
        cost.latency_s = 0.0


# ---- the version-2 operators, priced as the layers they run ----------------------------------------

def test_every_structure_costs_as_its_steps(model):
    big = conv(64, 64, 16)
    pointwise = lambda c_in, c_out: Layer("pw", "conv", (c_out, c_in, 1, 1), (1, c_in, 16, 16), (1, c_out, 16, 16),
                                          1, (1, 1), (0, 0), (1, 1), macs=16 * 16 * c_in * c_out)
    tucker = model.layer_cost(big, Option(method="tucker2", rank=16, rank_out=24))
    parts = [pointwise(64, 16), conv(16, 24, 16), pointwise(24, 64)]
    assert tucker.macs == sum(model.layer_cost(p).macs for p in parts)
    spatial = model.layer_cost(big, Option(method="spatial", rank=16))
    vertical = Layer("v", "conv", (16, 64, 3, 1), (1, 64, 16, 16), (1, 16, 16, 16), 1, (1, 1), (1, 0), (1, 1),
                     macs=16 * 16 * 64 * 16 * 3)
    horizontal = Layer("h", "conv", (64, 16, 1, 3), (1, 16, 16, 16), (1, 64, 16, 16), 1, (1, 1), (0, 1), (1, 1),
                       macs=16 * 16 * 64 * 16 * 3)
    assert spatial.macs == model.layer_cost(vertical).macs + model.layer_cost(horizontal).macs
    plus = model.layer_cost(big, Option(method="lowrank_sparse", rank=8, density=0.1))
    low = model.layer_cost(big, Option(rank=8))
    dense = model.layer_cost(big)
    assert plus.macs >= low.macs + dense.macs * 0.1 and plus.macs <= low.macs + dense.macs
    assert plus.weight_bytes > low.weight_bytes


def test_a_codebook_stores_indices_and_computes_on_the_float_path(model):
    layer = linear(1024, 1024)
    shared, uniform = model.layer_cost(layer, Option(bits=4, codebook=16)), model.layer_cost(layer, Option(bits=4))
    assert shared.weight_bytes == layer_bytes(layer, Option(bits=4, codebook=16))
    assert shared.weight_bytes < model.layer_cost(layer, Option(bits=8)).weight_bytes
    fp16 = model.layer_cost(layer, Option(bits=16))
    assert shared.macs == uniform.macs == fp16.macs


def test_measured_sizes_replace_the_estimate(model):
    layer = linear(256, 256)
    option = Option(sparsity=0.95, bits=4, codebook=16)
    estimate = model.layer_cost(layer, option).weight_bytes
    measured = model.price([(layer, option)], sizes=[estimate // 2]).row(0)
    assert measured.weight_bytes == estimate // 2
    assert measured.dram_bytes <= model.layer_cost(layer, option).dram_bytes

import math
from pathlib import Path

import pytest
import torch

from cost_models import microbench
from cost_models.microbench import LayerShape, layer_latencies, memory_bandwidth, overhead

KiB, MiB = 1024, 1024 ** 2


def test_layer_shape_macs_golden():
    assert LayerShape("conv", 64, 128, kernel=3, stride=2, size=56).macs == 128 * 28 * 28 * 64 * 9
    assert LayerShape("conv", 32, 32, kernel=3, groups=32, size=112).macs == 32 * 112 * 112 * 9
    assert LayerShape("linear", 512, 10).macs == 5120


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "pool"}, "kind must be"),
    ({"groups": 3}, "divisible by groups"),
])
def test_bad_layer_shapes_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LayerShape(**{"kind": "conv", "in_channels": 8, "out_channels": 8, **kwargs})


@pytest.mark.parametrize("shape", [LayerShape("conv", 8, 16, kernel=3, stride=2, size=8),
                                   LayerShape("conv", 8, 8, kernel=3, groups=8, size=8),
                                   LayerShape("linear", 64, 10)])
@pytest.mark.parametrize("runtime", microbench.RUNTIMES)
def test_every_runtime_measures_every_layer_kind(shape, runtime):
    state = torch.random.get_rng_state()
    (seconds,) = layer_latencies([shape], runtime, min_time_s=0)
    assert math.isfinite(seconds) and seconds > 0
    assert torch.equal(torch.random.get_rng_state(), state)          # the caller's RNG is left alone


def test_overhead_splits_call_and_layer_costs():
    cost = overhead("onnxruntime", layers=3, min_time_s=0.01)
    assert cost.runtime == "onnxruntime" and cost.call_s + cost.layer_s > 0


def test_peak_rates_are_positive_at_small_sizes():
    assert microbench.fp32_matmul_macs_per_s(size=64, min_time_s=0) > 0
    assert microbench.fp32_conv_macs_per_s(channels=8, size=8, min_time_s=0) > 0
    assert microbench.int8_macs_per_s(size=64, min_time_s=0) > 0


def test_bandwidth_curve_covers_the_sizes_asked_for():
    curve = microbench.bandwidth_curve(min_bytes=16 * KiB, max_bytes=64 * KiB, min_time_s=0)
    assert [size for size, _ in curve] == [16384, 23168, 32768, 46336, 65536]
    assert all(rate > 0 for _, rate in curve)


def test_plateaus_take_the_points_that_fit_each_level():
    curve = [(16 * KiB, 300.0), (32 * KiB, 200.0), (128 * KiB, 100.0), (256 * KiB, 90.0), (512 * KiB, 10.0),
             (1 * MiB, 5.0), (4 * MiB, 1.0), (8 * MiB, 2.0)]
    caches = [("L1", 64 * KiB), ("L2", 1 * MiB)]
    assert memory_bandwidth(curve, caches) == {"L1": 250.0, "L2": 90.0, "DRAM": 1.5}
    with pytest.raises(ValueError, match="no working set .* for DRAM"):
        memory_bandwidth(curve[:-2], caches)


@pytest.mark.skipif(not Path("/sys/devices/system/cpu/cpu0/cache").exists(), reason="needs Linux sysfs")
def test_cache_sizes_grow_with_level():
    caches = microbench.cache_sizes()
    assert [name for name, _ in caches] == [f"L{i + 1}" for i in range(len(caches))]
    assert all(a < b for (_, a), (_, b) in zip(caches, caches[1:]))

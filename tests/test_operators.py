"""The contract every compression operator keeps: shapes, error falling as it is given more,
special cases, exact bytes and an exact round trip through the file encoding."""
import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch import nn

from hwsearch.compression import (OPERATORS, Fitter, Geometry, apply_, compress, decode_layer, encode_layer,
                               estimate_layer_nbytes, factor_shapes, layer_nbytes, structure_of)
from hwsearch.compression.encoding import Reader
from hwsearch.compression.lowrank_sparse import Metric, alternating_projection, greedy_bilateral
from hwsearch.errors import OptionError
from hwsearch.compression import Option

torch.set_num_threads(1)


def _layers():
    torch.manual_seed(0)
    return {
        "conv": nn.Conv2d(6, 10, 3, padding=1),
        "strided": nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False),
        "grouped": nn.Conv2d(8, 12, 3, padding=1, groups=2),
        "depthwise": nn.Conv2d(6, 6, 3, padding=1, groups=6),
        "linear": nn.Linear(40, 24),
    }


LAYERS = _layers()


def _inputs(name: str) -> torch.Tensor:
    module = LAYERS[name]
    generator = torch.Generator().manual_seed(1)
    if isinstance(module, nn.Linear):
        return torch.randn(128, module.in_features, generator=generator)
    # anisotropic channels, so that fitting feature maps differs from fitting weights
    scale = torch.linspace(0.2, 2.0, module.in_channels)[None, :, None, None]
    return torch.randn(32, module.in_channels, 6, 6, generator=generator) * scale


# one or more options of every method, on the layers they apply to
CASES = [
    ("dense", "conv", Option()),
    ("dense", "conv", Option(sparsity=0.75, bits=4)),
    ("dense", "grouped", Option(bits=5, codebook=16)),
    ("dense", "linear", Option(sparsity=0.9, bits=3, codebook=32, init="density")),
    ("dense", "depthwise", Option(sparsity=0.5, bits=6)),
    ("svd", "conv", Option(rank=3, bits=8)),
    ("svd", "strided", Option(rank=2, sparsity=0.5, data_aware=True)),
    ("svd", "grouped", Option(rank=2, bits=4, codebook=16, data_aware=True)),
    ("svd", "linear", Option(rank=5, sparsity=0.75, bits=4, codebook=32)),
    ("spatial", "conv", Option(method="spatial", rank=3)),
    ("spatial", "strided", Option(method="spatial", rank=2, bits=6, data_aware=True)),
    ("spatial", "depthwise", Option(method="spatial", rank=1, data_aware=True)),
    ("tucker2", "conv", Option(method="tucker2", rank=3, rank_out=4, bits=8)),
    ("tucker2", "grouped", Option(method="tucker2", rank=2, rank_out=3, data_aware=True, sparsity=0.5)),
    ("tucker2", "strided", Option(method="tucker2", rank=2, rank_out=4, bits=4, codebook=16)),
    ("lowrank_sparse", "conv", Option(method="lowrank_sparse", rank=2, density=0.1, data_aware=True)),
    ("lowrank_sparse", "grouped", Option(method="lowrank_sparse", rank=1, density=0.05, bits=6)),
    ("lowrank_sparse", "linear", Option(method="lowrank_sparse", rank=0, density=0.2, bits=5, codebook=16,
                                        data_aware=True)),
    ("lowrank_sparse", "strided", Option(method="lowrank_sparse", rank=3, density=0.0, data_aware=True)),
]
IDS = [f"{method}-{layer}-{option.label}" for method, layer, option in CASES]


def test_every_registered_method_has_a_contract_case():
    assert set(OPERATORS) == {method for method, _, _ in CASES}


@pytest.fixture(params=CASES, ids=IDS)
def case(request):
    method, name, option = request.param
    module, x = LAYERS[name], _inputs(name)
    return module, x, option, compress(module, option, inputs=x)


def test_output_has_the_layer_shape_and_factors_the_structure_shapes(case):
    module, x, option, layer = case
    assert layer(x).shape == module(x).shape
    structure = structure_of(Geometry.of(module), option)
    assert [f.shape for f in layer.factors] == factor_shapes(structure)


def test_effective_weight_is_what_the_layer_applies(case):
    module, x, option, layer = case
    weight = layer.effective_weight()
    if isinstance(module, nn.Linear):
        expected = nn.functional.linear(x, weight, layer.bias)
    else:
        expected = nn.functional.conv2d(x, weight, layer.bias, module.stride, module.padding, module.dilation,
                                        module.groups)
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-4)


def test_byte_count_is_the_encoded_length_and_the_estimate_bounds_it(case):
    module, x, option, layer = case
    data = encode_layer(layer)
    assert layer_nbytes(layer) == len(data)
    assert len(data) <= estimate_layer_nbytes(Geometry.of(module), option, module.bias is not None)


def test_decoding_gives_the_same_outputs_bit_for_bit(case):
    module, x, option, layer = case
    reader = Reader(encode_layer(layer), "layer")
    loaded = decode_layer(reader, module)
    assert reader.pos == len(reader.data) and loaded.option == option
    with torch.no_grad():
        assert torch.equal(loaded(x), layer(x))


def test_fits_are_deterministic(case):
    module, x, option, layer = case
    again = compress(module, option, inputs=x)
    with torch.no_grad():
        assert torch.equal(again(x), layer(x))
    assert layer_nbytes(again) == layer_nbytes(layer)


def _error(module, option, x, fitter=None):
    with torch.no_grad():
        y = module(x)
        return float((compress(module, option, inputs=x, fitter=fitter)(x) - y).norm() / y.norm())


LADDERS = {
    "svd rank": ("conv", [Option(rank=r) for r in (1, 2, 4, 8)]),
    "svd rank, data": ("strided", [Option(rank=r, data_aware=True) for r in (1, 2, 4, 8)]),
    "grouped svd rank": ("grouped", [Option(rank=r) for r in (1, 2, 4, 6)]),
    "spatial rank": ("conv", [Option(method="spatial", rank=r) for r in (1, 2, 4, 8)]),
    "spatial rank, data": ("conv", [Option(method="spatial", rank=r, data_aware=True) for r in (1, 2, 4, 8)]),
    "tucker2 ranks": ("conv", [Option(method="tucker2", rank=r, rank_out=q) for r, q in ((1, 2), (2, 4), (4, 6),
                                                                                         (6, 10))]),
    "uniform bits": ("conv", [Option(bits=b) for b in (2, 3, 4, 6, 8)]),
    "codebook bits": ("linear", [Option(bits=b, codebook=32) for b in (2, 3, 4, 6, 8)]),
    "kept weights": ("linear", [Option(sparsity=s) for s in (0.9, 0.75, 0.5, 0.0)]),
    "S non-zeros": ("conv", [Option(method="lowrank_sparse", rank=2, density=d, data_aware=True)
                             for d in (0.02, 0.1, 0.3)]),
    "L rank": ("linear", [Option(method="lowrank_sparse", rank=r, density=0.05) for r in (1, 3, 6)]),
}


@pytest.mark.parametrize("ladder", LADDERS.values(), ids=LADDERS.keys())
def test_error_falls_as_rank_bits_or_kept_weights_rise(ladder):
    name, options = ladder
    module, x = LAYERS[name], _inputs(name)
    fitter = Fitter(module, x)
    errors = [_error(module, option, x, fitter) for option in options]
    assert all(a >= b - 1e-6 for a, b in zip(errors, errors[1:])), errors
    assert errors[0] > errors[-1]


@pytest.mark.parametrize("name, options", [
    ("conv", [Option(rank=10), Option(method="spatial", rank=18), Option(method="tucker2", rank=6, rank_out=10)]),
    ("grouped", [Option(rank=6), Option(method="tucker2", rank=4, rank_out=6)]),
    ("linear", [Option(rank=24)]),
])
def test_full_rank_factorisations_are_exact(name, options):
    module, x = LAYERS[name], _inputs(name)
    for option in options:
        torch.testing.assert_close(compress(module, option)(x), module(x), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("method, rank_out", [("svd", None), ("spatial", None), ("tucker2", 4)])
def test_fitting_feature_maps_beats_fitting_weights_on_the_calibration_data(method, rank_out):
    module, x = LAYERS["conv"], _inputs("conv")
    weights = Option(method=method, rank=3, rank_out=rank_out)
    data = Option(method=method, rank=3, rank_out=rank_out, data_aware=True)
    assert _error(module, data, x) < _error(module, weights, x)


def test_low_rank_plus_sparse_special_cases_are_pruning_and_low_rank():
    module, x = LAYERS["linear"], _inputs("linear")
    numel = module.weight.numel()                                           # 960: density 0.25 keeps 240
    pruned = compress(module, Option(method="lowrank_sparse", rank=0, density=0.25, bits=6))
    magnitude = compress(module, Option(sparsity=0.75, bits=6))
    assert torch.equal(pruned(x), magnitude(x)) and int(pruned.factors[0].mask.sum()) == numel // 4
    for data_aware in (False, True):
        pure = compress(module, Option(method="lowrank_sparse", rank=4, data_aware=data_aware), inputs=x)
        svd = compress(module, Option(rank=4, data_aware=data_aware), inputs=x)
        assert torch.equal(pure(x), svd(x))


def test_bilateral_solver_keeps_exactly_k_and_beats_either_part_alone_on_feature_maps():
    module, x = LAYERS["conv"], _inputs("conv")
    option = Option(method="lowrank_sparse", rank=2, density=0.1, data_aware=True)
    metric = Metric(Fitter(module, x), option, 0)
    w = module.weight.detach().reshape(10, -1).double()
    u, v, s, mask = greedy_bilateral(w, metric, 2, 54)
    assert int(mask.sum()) == 54 and torch.equal(s != 0, mask & (s != 0))
    both = metric.error(w - u @ v - s)
    u0, v0, _, _ = greedy_bilateral(w, metric, 2, 0)
    _, _, s0, _ = greedy_bilateral(w, metric, 0, 54)
    assert both < metric.error(w - u0 @ v0) and both < metric.error(w - s0)
    ua, va, sa, _ = alternating_projection(w, 2, 54)        # the weights-only reference, measured in the metric
    assert both <= metric.error(w - ua @ va - sa) * 1.05


def test_codebook_layers_hold_at_most_2_to_the_bits_values_and_fp16_centroids():
    module = LAYERS["linear"]
    layer = compress(module, Option(sparsity=0.5, bits=3, codebook=16))
    weight = layer.effective_weight()
    kept = weight[layer.factors[0].mask]
    assert len(torch.unique(kept)) <= 8
    assert torch.equal(kept, kept.half().float())
    assert int((weight != 0).sum()) <= module.weight.numel() // 2


def test_linear_initialisation_keeps_the_large_weights_that_density_initialisation_loses():
    torch.manual_seed(0)
    module = nn.Linear(100, 40)
    with torch.no_grad():                                   # heavy-tailed, as trained weights are
        module.weight.copy_(torch.distributions.StudentT(3.0).sample(module.weight.shape) * 0.05)
    largest = float(module.weight.detach().abs().max())
    extremes = {init: float(compress(module, Option(bits=3, codebook=32, init=init)).factors[0].centroids.detach().abs().max())
                for init in ("linear", "density", "forgy")}
    assert extremes["linear"] > 1.2 * max(extremes["density"], extremes["forgy"])
    assert extremes["linear"] <= largest + 1e-6


def test_retraining_moves_centroids_by_their_weights_summed_gradients_and_keeps_clusters():
    torch.manual_seed(0)
    layer = compress(nn.Linear(16, 8), Option(sparsity=0.5, bits=2, codebook=32))
    factor = layer.factors[0]
    codes, mask = factor.codes.clone(), factor.mask.clone()
    x = torch.randn(32, 16)
    loss = layer(x).pow(2).sum()
    loss.backward()
    # the gradient of a centroid is the sum of the gradients of the weights that share it (divided by the
    # mean number of weights per cluster, one factor for the whole layer)
    weight = factor.centroids.detach()[factor.codes.long()].requires_grad_()
    (nn.functional.linear(x, torch.where(mask, weight, 0.0), layer.bias)).pow(2).sum().backward()
    summed = torch.zeros(4).index_add_(0, codes[mask].long(), weight.grad[mask])
    torch.testing.assert_close(factor.centroids.grad, summed * 4 / int(mask.sum()))
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    optimizer.step()
    assert torch.equal(factor.codes, codes) and torch.equal(factor.mask, mask)


def test_options_a_layer_cannot_take_are_refused_with_the_fix():
    with pytest.raises(OptionError, match="use svd"):
        compress(LAYERS["linear"], Option(method="tucker2", rank=2, rank_out=2))
    with pytest.raises(OptionError, match="at most"):
        compress(LAYERS["conv"], Option(rank=11))
    with pytest.raises(OptionError, match="calibration"):
        compress(LAYERS["conv"], Option(rank=2, data_aware=True))
    with pytest.raises(OptionError, match="calibration"):
        apply_(nn.Sequential(copy.deepcopy(LAYERS["conv"])), {"0": Option(rank=2, data_aware=True)})


@st.composite
def layer_and_option(draw):
    kind = draw(st.sampled_from(["conv", "linear"]))
    bits = draw(st.sampled_from([32, 8, 6, 4, 3, 2]))
    codebook = draw(st.sampled_from([0, 16, 32])) if bits <= 8 else 0
    sparsity = draw(st.sampled_from([0.0, 0.5, 0.8, 0.95]))
    seed = draw(st.integers(0, 2 ** 16))
    torch.manual_seed(seed)
    if kind == "linear":
        k, n = draw(st.integers(2, 40)), draw(st.integers(2, 300))
        module, groups, kernel = nn.Linear(n, k, bias=draw(st.booleans())), 1, (1, 1)
        x = torch.randn(8, n)
        methods = ["dense", "svd", "lowrank_sparse"]
    else:
        groups = draw(st.sampled_from([1, 2]))
        kernel = draw(st.sampled_from([(1, 1), (3, 3), (3, 1), (5, 3)]))
        c, k = groups * draw(st.integers(1, 6)), groups * draw(st.integers(1, 8))
        module = nn.Conv2d(c, k, kernel, padding=(kernel[0] // 2, kernel[1] // 2), groups=groups,
                           bias=draw(st.booleans()))
        x = torch.randn(4, c, 5, 5)
        methods = ["dense", "svd", "lowrank_sparse", "tucker2"] + (["spatial"] if min(kernel) > 1 else [])
    method = draw(st.sampled_from(methods))
    kg, ng = module.weight.shape[0] // groups, module.weight[0].numel()
    rank, rank_out, density = None, None, 0.0
    if method in ("svd", "spatial"):
        limit = min(kg, ng) if method == "svd" else min(ng // kernel[1], kernel[1] * kg)
        rank = draw(st.integers(1, limit))
    elif method == "tucker2":
        cg, taps = module.weight.shape[1], kernel[0] * kernel[1]
        rank, rank_out = draw(st.integers(1, min(cg, kg * taps))), draw(st.integers(1, min(kg, cg * taps)))
    elif method == "lowrank_sparse":
        rank = draw(st.integers(0, min(kg, ng)))
        density = draw(st.sampled_from([0.0, 0.1, 0.3] if rank else [0.1, 0.3]))
        if density and round(density * kg * ng) == 0:
            density = 0.0 if rank else 0.9                  # round(0.9 * 1) keeps one weight
        sparsity = 0.0
    data_aware = method != "dense" and draw(st.booleans())
    option = Option(rank=rank, sparsity=sparsity, bits=bits, method=method, rank_out=rank_out, density=density,
                    codebook=codebook, data_aware=data_aware)
    return module, x, option


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer_and_option())
def test_random_layers_and_options_count_their_bytes_exactly_and_round_trip(drawn):
    module, x, option = drawn
    layer = compress(module, option, inputs=x)
    data = encode_layer(layer)
    assert layer_nbytes(layer) == len(data) <= estimate_layer_nbytes(Geometry.of(module), option,
                                                                      module.bias is not None)
    loaded = decode_layer(Reader(data, "layer"), module)
    with torch.no_grad():
        assert torch.equal(loaded(x), layer(x))
    assert np.isfinite(layer(x).detach().numpy()).all()

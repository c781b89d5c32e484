import copy

import pytest
import torch

from hwsearch.compression import CompressedLayer, Option, apply_, compress, kept_count, layer_options, quantize
from hwsearch.graph import LayerGraph


def test_fp32_option_reproduces_the_layer_exactly(tiny, example):
    reference = tiny(example)
    compressed = apply_(copy.deepcopy(tiny), {n: Option() for n in ["stem", "grouped", "depthwise", "fc"]})
    assert all(isinstance(compressed.get_submodule(n), CompressedLayer) for n in ["stem", "fc"])
    assert torch.equal(compressed(example), reference)


@pytest.mark.parametrize("name", ["stem", "grouped", "depthwise", "fc"])
def test_every_option_gives_a_runnable_layer_of_the_same_output_shape(tiny, example, name):
    layer = LayerGraph.trace(tiny, example).layer(name)
    module = tiny.get_submodule(name)
    x = torch.randn(4, *layer.in_shape[1:])
    for option in layer_options(layer, "full"):
        out = compress(module, option, inputs=x)(x)
        assert out.shape[1:] == layer.out_shape[1:] and len(out) == 4


def test_full_rank_factorisation_is_exact():
    conv = torch.nn.Conv2d(4, 6, 3, padding=1)
    x = torch.randn(2, 4, 5, 5)
    full = compress(conv, Option(rank=6))                   # rank = min(6, 36)
    torch.testing.assert_close(full(x), conv(x), atol=1e-5, rtol=1e-5)
    assert [tuple(f.weight.shape) for f in full.factors] == [(6, 36), (6, 6)]


def test_lower_rank_loses_more():
    torch.manual_seed(0)
    fc = torch.nn.Linear(32, 24)
    x = torch.randn(64, 32)
    errors = [(compress(fc, Option(rank=r))(x) - fc(x)).norm().item() for r in (16, 8, 2)]
    assert errors[0] < errors[1] < errors[2]


@pytest.mark.parametrize("sparsity", [0.5, 0.75, 0.9])
def test_sparsity_zeroes_exactly_that_fraction_by_magnitude(sparsity):
    torch.manual_seed(0)
    fc = torch.nn.Linear(40, 30)
    layer = compress(fc, Option(sparsity=sparsity))
    weight = layer.effective_weight()
    assert int((weight != 0).sum()) == kept_count(1200, sparsity)
    dropped = fc.weight[weight == 0].abs().max()
    kept = fc.weight[weight != 0].abs().min()
    assert dropped <= kept


@pytest.mark.parametrize("bits", [8, 6, 4, 2])
def test_quantized_weights_take_at_most_2_to_the_bits_values_per_row(bits):
    torch.manual_seed(0)
    weight = compress(torch.nn.Linear(300, 5), Option(bits=bits)).effective_weight()
    for row in weight:
        assert len(torch.unique(row)) <= 2 ** bits - 1
    codes, scale = quantize(torch.randn(5, 300), bits)
    assert codes.abs().max() <= 2 ** (bits - 1) - 1 and (scale > 0).all()


def test_fewer_bits_lose_more():
    torch.manual_seed(0)
    fc = torch.nn.Linear(64, 32)
    errors = [(compress(fc, Option(bits=b)).effective_weight() - fc.weight).norm().item() for b in (8, 6, 4, 2)]
    assert errors == sorted(errors) and errors[0] > 0


def test_gradients_flow_through_quantization_and_masks_stay_fixed():
    torch.manual_seed(0)
    layer = compress(torch.nn.Linear(16, 8), Option(sparsity=0.5, bits=4))
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    for _ in range(5):
        loss = layer(torch.randn(32, 16)).pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        assert layer.factors[0].weight.grad.abs().sum() > 0
        optimizer.step()
    assert int((layer.effective_weight() != 0).sum()) <= kept_count(128, 0.5)


def test_grouped_conv_is_factorised_per_group():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 6, 3, padding=1, groups=2)                 # two groups of 3 x (2*9)
    x = torch.randn(2, 4, 5, 5)
    full = compress(conv, Option(rank=3))                                 # full rank of each group
    torch.testing.assert_close(full(x), conv(x), atol=1e-5, rtol=1e-5)
    assert [tuple(f.weight.shape) for f in full.factors] == [(6, 18), (6, 3)]
    with pytest.raises(ValueError, match="at most 3"):
        compress(conv, Option(rank=4))

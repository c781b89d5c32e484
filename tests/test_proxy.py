import numpy as np
import torch

from hwsearch.layer_graph import LayerGraph
from hwsearch.options import Option, layer_options
from hwsearch.proxy import build_proxy_table, capture_inputs


def test_table_has_one_error_per_layer_option_and_zero_for_fp32(tiny, example):
    layers = LayerGraph.trace(tiny, example).compressible()
    options = {l.name: layer_options(l) for l in layers}
    table = build_proxy_table(tiny, layers, options, torch.randn(32, 1, 8, 8))
    for layer in layers:
        errors = table.errors[layer.name]
        assert errors.shape == (len(options[layer.name]),) and np.isfinite(errors).all()
        assert errors[options[layer.name].index(Option())] == 0.0
        assert (errors[[i for i, o in enumerate(options[layer.name]) if o != Option()]] > 0).all()


def test_error_grows_as_compression_deepens(tiny, example):
    layers = LayerGraph.trace(tiny, example).compressible()
    ladder = [Option(bits=8), Option(bits=4), Option(sparsity=0.5, bits=4), Option(sparsity=0.9, bits=4)]
    table = build_proxy_table(tiny, layers, {l.name: ladder for l in layers}, torch.randn(64, 1, 8, 8))
    for layer in layers:
        assert list(table.errors[layer.name]) == sorted(table.errors[layer.name])


def test_inputs_are_those_the_original_model_feeds_each_layer(tiny, example):
    layers = LayerGraph.trace(tiny, example).compressible()
    x = torch.randn(4, 1, 8, 8)
    inputs = capture_inputs(tiny, layers, x)
    assert torch.equal(inputs["stem"], x)
    assert inputs["fc"].shape == (4, 512)
    assert not any(m._forward_pre_hooks for m in tiny.modules())   # hooks removed

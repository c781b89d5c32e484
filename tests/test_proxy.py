import numpy as np
import pytest
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


def test_cache_returns_the_same_table_and_keys_on_the_calibration(tiny, example, tmp_path, monkeypatch):
    from hwsearch import proxy as proxy_module
    layers = LayerGraph.trace(tiny, example).compressible()
    options = {l.name: layer_options(l) for l in layers}
    x = torch.randn(16, 1, 8, 8)
    first, reused = proxy_module.cached_proxy_table(tiny, layers, options, x, tmp_path)
    assert not reused and len(list(tmp_path.glob("proxy-*.npz"))) == 1

    def no_compute(*args, **kwargs):
        raise AssertionError("the cached table should have been used")

    monkeypatch.setattr(proxy_module, "build_proxy_table", no_compute)
    second, reused = proxy_module.cached_proxy_table(tiny, layers, options, x, tmp_path)
    assert reused and all(np.array_equal(first.errors[n], second.errors[n]) for n in first.errors)
    with pytest.raises(AssertionError, match="cached table"):
        proxy_module.cached_proxy_table(tiny, layers, options, x + 1, tmp_path)   # other data, other key


def test_unreadable_cache_entry_is_rebuilt(tiny, example, tmp_path):
    from hwsearch.proxy import cached_proxy_table
    layers = LayerGraph.trace(tiny, example).compressible()
    options = {l.name: layer_options(l) for l in layers}
    x = torch.randn(16, 1, 8, 8)
    table, _ = cached_proxy_table(tiny, layers, options, x, tmp_path)
    for path in tmp_path.glob("proxy-*.npz"):
        path.write_bytes(b"garbage")
    again, reused = cached_proxy_table(tiny, layers, options, x, tmp_path)
    assert not reused and all(np.array_equal(table.errors[n], again.errors[n]) for n in table.errors)


def test_table_records_the_exact_bytes_of_every_fitted_option(tiny, example, tmp_path):
    from hwsearch.compress import compress, layer_nbytes
    from hwsearch.proxy import cached_proxy_table
    layers = LayerGraph.trace(tiny, example).compressible()
    grid = [Option(), Option(sparsity=0.9, bits=4, codebook=16), Option(bits=8)]
    options = {l.name: grid for l in layers}
    x = torch.randn(16, 1, 8, 8)
    table, _ = cached_proxy_table(tiny, layers, options, x, tmp_path)
    cached, reused = cached_proxy_table(tiny, layers, options, x, tmp_path)
    assert reused
    for layer in layers:
        module = tiny.get_submodule(layer.name)
        assert list(table.sizes[layer.name]) == [layer_nbytes(compress(module, o)) for o in grid]
        assert np.array_equal(cached.sizes[layer.name], table.sizes[layer.name])

import numpy as np
import pytest
import torch

from hwsearch.graph import LayerGraph
from hwsearch.compression import Option, capture_inputs, layer_options
from hwsearch.proxy import build_proxy_table


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
    inputs = capture_inputs(tiny, [l.name for l in layers], x)
    assert torch.equal(inputs["stem"], x)
    assert inputs["fc"].shape == (4, 512)
    assert not any(m._forward_pre_hooks for m in tiny.modules())   # hooks removed


def test_cache_returns_the_same_table_and_keys_on_the_calibration(tiny, example, tmp_path, monkeypatch):
    from hwsearch.proxy import table as proxy_module
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


@pytest.mark.parametrize("damage", ["empty", "truncated", "bit flip", "digest"])
def test_a_damaged_cache_entry_is_named_and_recomputed(tiny, example, tmp_path, damage):
    from hwsearch.proxy import cached_proxy_table
    layers = LayerGraph.trace(tiny, example).compressible()
    options = {l.name: layer_options(l) for l in layers}
    x = torch.randn(16, 1, 8, 8)
    table, _ = cached_proxy_table(tiny, layers, options, x, tmp_path)
    (path,) = tmp_path.glob("proxy-*.npz")
    data = path.read_bytes()
    middle = len(data) // 2
    if damage == "digest":       # a whole, readable file whose numbers are not the ones it was stored with
        with np.load(path) as saved:
            arrays = dict(saved)
        arrays["stem"] = arrays["stem"] * 0.5
        with path.open("wb") as f:
            np.savez(f, **arrays)
    else:
        path.write_bytes({"empty": b"", "truncated": data[:middle],
                          "bit flip": data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]}[damage])
    warnings = []
    again, reused = cached_proxy_table(tiny, layers, options, x, tmp_path, warn=warnings.append)
    assert not reused and len(warnings) == 1 and str(path) in warnings[0] and "recomputing" in warnings[0]
    assert all(np.array_equal(table.errors[n], again.errors[n]) for n in table.errors)
    third, reused = cached_proxy_table(tiny, layers, options, x, tmp_path, warn=warnings.append)
    assert reused and len(warnings) == 1                 # the rewritten entry is whole again


def test_cache_keeps_the_sensitivities(tiny, example, tmp_path):
    from hwsearch.proxy import cached_proxy_table
    layers = LayerGraph.trace(tiny, example).compressible()
    options = {l.name: layer_options(l) for l in layers}
    x = torch.randn(16, 1, 8, 8)
    first, _ = cached_proxy_table(tiny, layers, options, x, tmp_path)
    second, reused = cached_proxy_table(tiny, layers, options, x, tmp_path)
    assert reused and second.sensitivity == first.sensitivity and set(first.sensitivity) == {l.name for l in layers}


def test_weighted_scores_are_sensitivity_times_squared_error_and_sum_scores_are_the_errors():
    from hwsearch.proxy import ProxyTable
    options = {"a": [Option(), Option(bits=4)], "b": [Option(), Option(bits=4)]}
    table = ProxyTable(options, {"a": np.array([0.0, 0.5]), "b": np.array([0.0, 0.2])},
                       sensitivity={"a": 2.0, "b": 10.0})
    assert np.allclose(table.scores["a"], [0.0, 0.5]) and np.allclose(table.scores["b"], [0.0, 0.4])
    plain = table.combined("sum")
    assert plain.scores is plain.errors and table.combined("weighted") is table
    with pytest.raises(ValueError, match="sensitivities"):
        plain.combined("weighted")


def test_output_divergence_is_zero_for_equal_outputs_and_grows_with_the_change():
    from hwsearch.proxy import output_divergence
    logits = torch.randn(64, 10)
    changes = [output_divergence(logits, logits + scale * torch.randn(64, 10, generator=torch.Generator().manual_seed(0)))
               for scale in (0.0, 0.1, 0.5, 2.0)]
    assert changes[0] == pytest.approx(0.0, abs=1e-12) and changes == sorted(changes) and changes[1] > 0
    maps = torch.randn(8, 4, 5, 5)
    assert output_divergence(maps, 1.1 * maps) == pytest.approx(0.01)      # squared relative error


def test_sensitivity_is_larger_where_the_network_amplifies_an_error():
    """Two layers in a row; scaling the second's weights up by 10 makes the first layer's error matter more."""
    from hwsearch.graph import LayerGraph
    from hwsearch.proxy import layer_sensitivity
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Linear(16, 10)).eval()
    x = torch.randn(256, 16)
    layers = LayerGraph.trace(model, x[:1]).compressible()
    quiet = layer_sensitivity(model, layers, x)
    with torch.no_grad():
        model[1].weight.mul_(10)
    loud = layer_sensitivity(model, layers, x)
    assert all(v > 0 for v in quiet.values())
    assert loud["0"] > 10 * quiet["0"]


def test_plan_scorer_equals_the_divergence_of_the_compressed_model(tiny, example):
    import copy

    from hwsearch.compression import apply_
    from hwsearch.proxy import PlanScorer, end_to_end
    layers = LayerGraph.trace(tiny, example).compressible()
    x = torch.randn(32, 1, 8, 8)
    scorer = PlanScorer(tiny, x)
    for plan in ({layers[0].name: Option(bits=4)}, {layers[0].name: Option(rank=2, sparsity=0.5, bits=6), layers[1].name: Option(sparsity=0.75, bits=4),
                 layers[-1].name: Option(rank=4, bits=8)}):
        expected = end_to_end(tiny, apply_(copy.deepcopy(tiny), plan), x)
        assert scorer(plan) == pytest.approx(expected, rel=1e-9) and expected > 0
    assert scorer({}) == pytest.approx(0.0, abs=1e-12)
    assert all(type(tiny.get_submodule(l.name)) in (torch.nn.Conv2d, torch.nn.Linear) for l in layers)   # untouched


def test_table_records_the_exact_bytes_of_every_fitted_option(tiny, example, tmp_path):
    from hwsearch.compression import compress, layer_nbytes
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

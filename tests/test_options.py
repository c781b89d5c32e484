import pytest

from hwsearch.layer_graph import LayerGraph
from hwsearch.options import Option, layer_options


@pytest.mark.parametrize("option", [Option(), Option(rank=3), Option(sparsity=0.9, bits=4), Option(2, 0.5, 6)])
def test_options_round_trip_through_json(option):
    assert Option.from_dict(option.to_dict()) == option


@pytest.mark.parametrize("kwargs", [{"rank": 0}, {"sparsity": 1.0}, {"bits": 1}, {"bits": 17}])
def test_invalid_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        Option(**kwargs)


def test_version_mismatch_is_refused():
    with pytest.raises(ValueError, match="version"):
        Option.from_dict({"version": 99, "rank": None, "sparsity": 0.0, "bits": 32})


def test_grid_keeps_only_ranks_that_save_weights_and_none_for_grouped(tiny, example):
    graph = LayerGraph.trace(tiny, example)
    for layer in graph.compressible():
        options = layer_options(layer)
        assert Option() in options and len(set(options)) == len(options)
        rows, cols = layer.matrix_shape
        for option in options:
            if option.rank:
                assert option.rank * (rows + cols) < rows * cols
        if layer.groups > 1:
            assert all(o.rank is None for o in options)
    assert any(o.rank for o in layer_options(graph.layer("fc")))


def test_labels_are_unique_per_layer(tiny, example):
    for layer in LayerGraph.trace(tiny, example).compressible():
        labels = [o.label for o in layer_options(layer)]
        assert len(set(labels)) == len(labels)

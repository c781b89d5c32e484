import pytest

from hwsearch.graph import LayerGraph
from hwsearch.compression.grid import layer_options, saves_weights
from hwsearch.compression import Option


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


@pytest.mark.parametrize("grid", ["classic", "default", "full"])
def test_grid_keeps_only_options_that_save_weights_and_factorises_grouped_convs_beyond_classic(tiny, example, grid):
    graph = LayerGraph.trace(tiny, example)
    for layer in graph.compressible():
        options = layer_options(layer, grid)
        assert Option() in options and len(set(options)) == len(options)
        assert all(saves_weights(layer, o) for o in options if o.factorised)
        if layer.groups > 1 and grid == "classic":
            assert all(o.rank is None for o in options)
    assert any(o.rank for o in layer_options(graph.layer("fc"), grid))
    assert any(o.rank for o in layer_options(graph.layer("grouped"), grid)) == (grid != "classic")


def test_the_default_grid_adds_the_new_operators_to_the_classic_one(tiny, example):
    layer = LayerGraph.trace(tiny, example).layer("grouped")
    classic, default, full = (layer_options(layer, g) for g in ("classic", "default", "full"))
    assert set(classic) < set(default) < set(full)
    methods = {o.method for o in default}
    assert {"dense", "svd", "tucker2", "spatial"} <= methods and any(o.codebook for o in default)
    assert "lowrank_sparse" in {o.method for o in full}
    with pytest.raises(ValueError, match="grid must be one of"):
        layer_options(layer, "huge")


def test_labels_are_unique_per_layer(tiny, example):
    for layer in LayerGraph.trace(tiny, example).compressible():
        labels = [o.label for o in layer_options(layer)]
        assert len(set(labels)) == len(labels)


NEW = [Option(method="tucker2", rank=3, rank_out=5, bits=4, codebook=16, data_aware=True),
       Option(method="spatial", rank=2, sparsity=0.5), Option(bits=5, codebook=32, init="forgy"),
       Option(method="lowrank_sparse", rank=0, density=0.1), Option(rank=4, data_aware=True)]


@pytest.mark.parametrize("option", NEW, ids=[o.label for o in NEW])
def test_version_2_options_round_trip_and_have_unique_labels(option):
    assert Option.from_dict(option.to_dict()) == option
    assert option.to_dict()["version"] == 2
    assert len({o.label for o in NEW + [Option(), Option(rank=4)]}) == len(NEW) + 2


def test_version_1_dicts_load_as_the_option_they_meant():
    assert Option.from_dict({"version": 1, "rank": 16, "sparsity": 0.5, "bits": 4}) == Option(rank=16, sparsity=0.5,
                                                                                            bits=4, method="svd")
    assert Option.from_dict({"rank": None, "sparsity": 0.0, "bits": 8}).method == "dense"
    assert Option(rank=16, bits=4).label == "r16-b4" and Option(sparsity=0.9, bits=4).label == "s0.9-b4"
    with pytest.raises(ValueError, match="version-1 option has only"):
        Option.from_dict({"version": 1, "rank": 4, "method": "svd"})


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "magic"}, "method must be one of"),
    ({"method": "tucker2", "rank": 2}, "rank_out"),
    ({"rank": 2, "rank_out": 2}, "tucker2 only"),
    ({"method": "lowrank_sparse", "rank": 0}, "rank > 0 or density > 0"),
    ({"density": 0.1}, "lowrank_sparse only"),
    ({"bits": 12, "codebook": 16}, "bits from 2 to 8"),
    ({"bits": 4, "codebook": 8}, "codebook must be"),
    ({"init": "forgy"}, "needs a codebook"),
    ({"data_aware": True}, "needs a low-rank method"),
])
def test_invalid_version_2_options_name_the_rule(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Option(**kwargs)

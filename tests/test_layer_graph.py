import pytest
import torch

from hwsearch.errors import ModelError
from hwsearch.layer_graph import LayerGraph
from hwsearch.models import build_model
from tests.conftest import DataDependent


def test_compressible_layers_carry_shapes_groups_and_macs(tiny, example):
    graph = LayerGraph.trace(tiny, example)
    assert [l.name for l in graph.compressible()] == ["stem", "grouped", "depthwise", "fc"]
    stem, grouped, depthwise, fc = graph.compressible()
    assert stem.weight_shape == (8, 1, 3, 3) and stem.out_shape == (1, 8, 8, 8)
    assert stem.macs == 8 * 8 * 8 * 1 * 9
    assert grouped.groups == 2 and grouped.matrix_shape == (8, 4 * 9)
    assert grouped.macs == 8 * 8 * 8 * 4 * 9            # each output sees C/groups input channels
    assert depthwise.groups == 8 and depthwise.macs == 8 * 8 * 8 * 9
    assert fc.kind == "linear" and fc.in_shape == (1, 512) and fc.macs == 512 * 10
    assert grouped.has_bias and not stem.has_bias


def test_residual_add_is_a_node_and_couples_channels(tiny, example):
    graph = LayerGraph.trace(tiny, example)
    adds = [n for n, a in graph.graph.nodes(data=True) if a["type"] == "add"]
    assert len(adds) == 1
    assert graph.coupling_groups() == [{"stem", "depthwise"}]


def test_resnet18_matches_the_published_size_and_couples_each_stage():
    graph = LayerGraph.trace(build_model("resnet18_digits").eval(), torch.zeros(1, 1, 8, 8))
    layers = graph.compressible()
    assert len(layers) == 21                            # 17 convs + 3 downsample convs + fc
    assert sum(l.n_weights for l in layers) * 4 > 44_000_000
    groups = graph.coupling_groups()
    assert len(groups) == 4
    assert {"layer2.0.downsample.0", "layer2.0.conv2", "layer2.1.conv2"} in groups


def test_untraceable_model_gives_a_clear_error(example):
    with pytest.raises(ModelError, match="cannot be traced by torch.fx"):
        LayerGraph.trace(DataDependent(), example)


def test_wrong_input_shape_gives_a_clear_error(tiny):
    with pytest.raises(ModelError, match="example input of the shape"):
        LayerGraph.trace(tiny, torch.zeros(1, 3, 8, 8))

import pytest
import torch
from torch import nn

from hwsearch.errors import ModelError
from hwsearch.graph import LayerGraph
from hwsearch.workloads.models import REFERENCE_MODELS, build_model
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


# ---- every op of real models, MACs exact -----------------------------------------------------------

class Towers(nn.Module):
    """Squeeze-excite, a transposed conv, slicing into two towers, concatenation, attention and matmuls."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.squeeze = nn.Conv2d(16, 4, 1)
        self.excite = nn.Conv2d(4, 16, 1)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.left = nn.Conv2d(4, 4, 1)
        self.right = nn.Conv2d(4, 4, 3, padding=1)
        self.attention = nn.MultiheadAttention(16, 4, batch_first=True)
        self.head = nn.Linear(8 * 16 * 16 + 16 + 64, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = self.dw(x)
        x = x * torch.sigmoid(self.excite(torch.relu(self.squeeze(x.mean((2, 3), keepdim=True)))))
        tokens = x.flatten(2).transpose(1, 2)                            # (1, 64, 16)
        attended, _ = self.attention(tokens, tokens, tokens)
        scores = tokens @ tokens.transpose(1, 2)                         # (1, 64, 64)
        mixed = torch.einsum("bld,bmd->blm", tokens, tokens).mean(2)     # (1, 64)
        u = self.up(x)                                                   # (1, 8, 16, 16)
        towers = torch.cat([self.left(u[:, :4]), self.right(u[:, 4:])], 1)
        return self.head(torch.cat([towers.flatten(1), attended.mean(1), mixed + scores.mean(2)], 1))


def flop_counter_macs(model, x) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def test_every_conv_transposed_conv_linear_and_attention_product_is_counted():
    model, x = Towers().eval(), torch.randn(1, 3, 8, 8)
    graph = LayerGraph.trace(model, x)
    kinds = {op.kind for op in graph.ops()}
    assert {"conv", "conv_transpose", "linear", "matmul", "elementwise"} <= kinds
    # torch's FLOP counter misses nn.MultiheadAttention's fused inference path: count that one by hand
    tokens, embed, heads = 64, 16, 4
    attention = 4 * tokens * embed * embed + 2 * heads * tokens * tokens * (embed // heads)
    assert sum(op.macs for op in graph.ops()) == flop_counter_macs(model, x) + attention
    projections = [op.name for op in graph.ops() if op.name.startswith("attention.")]
    assert projections == ["attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.scores",
                           "attention.context", "attention.out_proj"]
    assert [l.name for l in graph.compressible()] == ["stem", "dw", "squeeze", "excite", "left", "right", "head"]
    fused = {n for n, a in graph.graph.nodes(data=True) if a["fused"]}
    assert {"bn", "relu"} <= fused                                      # folded into the stem, as runtimes do


@pytest.mark.parametrize("name", sorted(REFERENCE_MODELS))
def test_macs_match_torch_flop_counter_on_reference_architectures(name):
    size = 227 if name in ("alexnet_bvlc", "squeezenet1_1_conv10_pad1") else 224
    model, x = build_model(name).eval(), torch.zeros(1, 3, size, size)
    graph = LayerGraph.trace(model, x)
    assert sum(op.macs for op in graph.ops()) == flop_counter_macs(model, x)


def test_activation_edges_connect_costed_ops_through_views_and_fused_ops(tiny, example):
    edges = LayerGraph.trace(tiny, example).activation_edges()
    pairs = {(p, c) for p, c, _ in edges}
    assert ("input", "stem") in pairs and ("grouped", "depthwise") in pairs
    assert ("stem", "add") in pairs and ("depthwise", "add") in pairs and ("fc", "output") in pairs
    assert dict(((p, c), n) for p, c, n in edges)[("stem", "grouped")] == 8 * 8 * 8


def test_a_failing_op_is_named():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(10, 4)

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(ModelError, match="at op 'fc' \\(Linear\\)"):
        LayerGraph.trace(Broken(), torch.zeros(1, 7))


def test_untraceable_code_is_named_by_its_line(example):
    with pytest.raises(ModelError, match="conftest.py:[0-9]+ \\(`if x.sum\\(\\) > 0:`\\)"):
        LayerGraph.trace(DataDependent(), example)

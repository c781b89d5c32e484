"""The reference architectures match torchvision's published parameter counts and MACs.

Where the expected figures come from (torchvision 0.22):
- num_params: the `meta["num_params"]` of each model's `*_Weights.IMAGENET1K_V1` in
  torchvision/models/*.py, which the docs render as the "num_params" row of each
  model's page, e.g. pytorch/vision gh-pages 0.22/models/generated/
  torchvision.models.googlenet.html: "num_params 6624904", "GFLOPS 1.50".
- GMACs: `meta["_ops"]`, to three decimals. The docs call it "GFLOPS" (0.22/models.html,
  "Table of all available classification weights", rounded to two decimals, e.g.
  ResNet-50 4.09, VGG-16 15.47, MobileNet_V2 0.3) but it counts a multiply-add once, i.e.
  MACs. Read in pytorch/vision torchvision/models/mobilenetv3.py @ 2f7f558 (5483032 and
  0.217, 2542856 and 0.057) and in verbatim copies of the other torchvision model files.
- mobilenet_v1 is not in torchvision: Howard et al. 2017 (arXiv:1704.04861) Table 8
  gives 4.2 M parameters and 569 M mult-adds for 1.0 MobileNet-224; 4,231,976 is the
  exact count of that network with BatchNorm (conv weights, BN scale and shift, fc).

The Caffe-era definitions (`NCNN`) are checked against the network files Tencent/ncnn
benchmarks, benchmark/<name>.param at c384bc108b862a6924b51a758fc19286ff9b3840
(2020-06-12), at the input size benchmark/benchncnn.cpp gives each (227 for AlexNet and
SqueezeNet, 224 otherwise). From each file, one line a layer:
- weights: the sum of weight_data_size (key 6 of Convolution and ConvolutionDepthWise,
  key 2 of InnerProduct); biases: num_output (key 0) of each layer with a bias
  (key 5 = 1 for convolutions, key 1 = 1 for InnerProduct);
- MACs: weight_data_size times the output height and width for a convolution (the
  output size by ncnn's rules, which agrees with the shape hints the files carry),
  weight_data_size for an InnerProduct.
ncnn folds every BatchNorm into the convolution before it: its scale into the weights
and its shift into the bias. So a model with BatchNorm matches as conv and linear
weights (equal to ncnn's weights) plus conv, linear and BatchNorm biases (equal to ncnn's
biases); its parameter count is that plus one BatchNorm scale per channel.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

from hwsearch.errors import ModelError
from hwsearch.workloads.models.efficientnet import StochasticDepth
from hwsearch.workloads.models.reference import REFERENCE_MODELS, build_reference
from hwsearch.workloads.models.regnet import block_params

# name: (num_params, GMACs at 1x3x224x224), as torchvision documents them (see module docstring).
EXPECTED = {
    "resnet18": (11_689_512, 1.814),
    "resnet50": (25_557_032, 4.089),
    "mobilenet_v1": (4_231_976, 0.569),        # paper, not torchvision
    "mobilenet_v2": (3_504_872, 0.301),
    "mobilenet_v3_large": (5_483_032, 0.217),
    "mobilenet_v3_small": (2_542_856, 0.057),
    "vgg16": (138_357_544, 15.47),
    "squeezenet1_0": (1_248_424, 0.819),
    "squeezenet1_1": (1_235_496, 0.349),
    "googlenet": (6_624_904, 1.498),           # without the aux heads, as documented
    "alexnet": (61_100_840, 0.714),
    "densenet121": (7_978_856, 2.834),
    "efficientnet_b0": (5_288_548, 0.386),
    "shufflenet_v2_x1_0": (2_278_604, 0.145),
    "mnasnet1_0": (4_383_312, 0.314),
    "regnet_y_400mf": (4_344_144, 0.402),
    # not in torchvision: DeiT-Ti (Touvron et al. 2021, Table 1: 5M parameters, 1.3 GFLOPs, which count a
    # multiply-add once) is timm's vit_tiny_patch16_224, 5,717,416 parameters; 1.254 GMACs is the exact count
    # with both attention products (12 blocks x 102.05 M + the 28.9 M patch embedding + the head)
    "vit_tiny": (5_717_416, 1.254),
}

# name: (ncnn benchmark file, input side, weights, biases, MACs), summed from the file (see module docstring).
NCNN = {
    "resnet50_v1": ("resnet50.param", 224, 25_502_912, 27_560, 3_857_973_248),
    "alexnet_bvlc": ("alexnet.param", 227, 60_954_656, 10_568, 724_406_816),
    "googlenet_bvlc": ("googlenet.param", 224, 6_990_272, 8_280, 1_582_671_872),
    "squeezenet1_1_conv10_pad1": ("squeezenet.param", 227, 1_231_552, 3_944, 418_467_520),
    "mobilenet_v2_caffe": ("mobilenet_v2.param", 224, 3_470_784, 18_088, 313_619_328),
    "mobilenet_v3_large_arxiv_v1": ("mobilenet_v3.param", 224, 5_115_080, 18_614, 245_564_768),
}


@dataclass
class Measured:
    name: str
    model: nn.Module
    x: torch.Tensor        # (1, 3, 224, 224), or the ncnn benchmark's input size
    y: torch.Tensor        # eager output on x
    macs: int              # FlopCounterMode FLOPs / 2


@pytest.fixture(scope="module")
def measured(request) -> Measured:
    """Each model built and run once (batch 1, no grad) for all the tests below.

    At 224x224, or at the input size ncnn benchmarks a Caffe-era model at.
    Tests choose the models with `pytest.mark.parametrize("measured", names, indirect=True)`.
    """
    name = request.param
    side = NCNN[name][1] if name in NCNN else 224
    torch.manual_seed(0)
    model = build_reference(name).eval()
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        y = model(x)
    return Measured(name, model, x, y, counter.get_total_flops() // 2)


torchvision_models = pytest.mark.parametrize("measured", sorted(EXPECTED), indirect=True)
ncnn_models = pytest.mark.parametrize("measured", sorted(NCNN), indirect=True)
all_models = pytest.mark.parametrize("measured", sorted(EXPECTED) + sorted(NCNN), indirect=True)


@torchvision_models
def test_parameter_count_matches_torchvision(measured):
    n_params = sum(p.numel() for p in measured.model.parameters())
    assert n_params == EXPECTED[measured.name][0]


@torchvision_models
def test_macs_match_torchvision_within_one_percent(measured):
    gmacs = measured.macs / 1e9
    assert gmacs == pytest.approx(EXPECTED[measured.name][1], rel=0.01)


@ncnn_models
def test_weights_and_biases_match_the_ncnn_param_file(measured):
    modules = list(measured.model.modules())
    weights = sum(m.weight.numel() for m in modules if isinstance(m, (nn.Conv2d, nn.Linear)))
    # ncnn folds a BatchNorm into the conv before it: its shift becomes that conv's bias.
    biases = sum(m.bias.numel() for m in modules
                 if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)) and m.bias is not None)
    bn_scales = sum(m.weight.numel() for m in modules if isinstance(m, nn.BatchNorm2d))
    _, _, ncnn_weights, ncnn_biases, _ = NCNN[measured.name]
    assert (weights, biases) == (ncnn_weights, ncnn_biases)
    n_params = sum(p.numel() for p in measured.model.parameters())
    assert n_params - bn_scales == ncnn_weights + ncnn_biases


@ncnn_models
def test_macs_match_the_ncnn_param_file_within_one_percent(measured):
    assert measured.macs == pytest.approx(NCNN[measured.name][4], rel=0.01)


@all_models
def test_output_is_one_row_of_1000_logits(measured):
    assert measured.y.shape == (1, 1000)
    assert torch.isfinite(measured.y).all()


@all_models
def test_fx_trace_reproduces_the_eager_forward(measured):
    traced = fx.symbolic_trace(measured.model)
    with torch.no_grad():
        torch.testing.assert_close(traced(measured.x), measured.y)


def test_registry_holds_exactly_the_public_names():
    assert set(REFERENCE_MODELS) == set(EXPECTED) | set(NCNN)


def test_resnet50_v1_strides_the_first_1x1_conv_of_each_downsampling_block():
    model = build_reference("resnet50_v1")
    first_blocks = [model.layer2[0], model.layer3[0], model.layer4[0]]
    assert [(b.conv1.stride, b.conv2.stride) for b in first_blocks] == [((2, 2), (1, 1))] * 3


@pytest.mark.parametrize("name", ["resnet18", "squeezenet1_1", "mobilenet_v3_small", "regnet_y_400mf",
                                  "alexnet_bvlc", "googlenet_bvlc", "mobilenet_v3_large_arxiv_v1"])
def test_num_classes_sets_the_output_width(name):
    model = build_reference(name, num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 10)


def test_unknown_name_raises_model_error_listing_the_choices():
    with pytest.raises(ModelError, match="unknown reference model 'resnet101'.*mobilenet_v1"):
        build_reference("resnet101")


def test_regnet_y_400mf_stages_follow_the_quantized_linear_rule():
    stages = block_params(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8)
    assert [s.width for s in stages] == [48, 104, 208, 440]
    assert [s.depth for s in stages] == [1, 3, 6, 6]


def test_stochastic_depth_is_identity_in_eval_and_leaves_no_graph_node():
    module = StochasticDepth(0.5).eval()
    x = torch.randn(4, 3, 2, 2)
    assert module(x) is x
    traced = fx.symbolic_trace(module)
    assert [n.op for n in traced.graph.nodes] == ["placeholder", "output"]


def test_stochastic_depth_drops_whole_rows_in_training_and_traces():
    module = StochasticDepth(0.5).train()
    torch.manual_seed(0)
    x = torch.ones(64, 3, 2, 2)
    y = fx.symbolic_trace(module)(x)
    per_row = y.flatten(1)
    # Each example is either dropped (0) or kept and rescaled by 1 / (1 - p) = 2.
    assert set(per_row.unique().tolist()) <= {0.0, 2.0}
    assert (per_row == per_row[:, :1]).all()
    assert 0 < (per_row[:, 0] == 0).sum() < 64


def test_efficientnet_traces_in_training_mode():
    model = build_reference("efficientnet_b0").train()
    traced = fx.symbolic_trace(model)
    assert any(n.op == "call_function" and n.target.__name__ == "drop_rows" for n in traced.graph.nodes)

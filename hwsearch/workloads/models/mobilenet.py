"""MobileNet v1, v2 and v3 (large and small) for 224x224 ImageNet, randomly initialised.

v2 and v3 are as torchvision 0.2x defines them (`torchvision.models.mobilenetv2`,
`torchvision.models.mobilenetv3`): same modules in the same order, so parameter names,
counts and MACs match torchvision's. v1 is not in torchvision; it is the network of
Table 1 of the paper, with BatchNorm after every convolution, in the same style.

- v1: Howard et al. 2017, "MobileNets: Efficient Convolutional Neural Networks for
  Mobile Vision Applications" (arXiv:1704.04861). Width 1.0: 4.2 M parameters, 569 M MACs.
- v2: Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks"
  (arXiv:1801.04381).
- v3: Howard et al. 2019, "Searching for MobileNetV3" (arXiv:1905.02244).

Two earlier readings of v2 and v3, the networks Tencent/ncnn benchmarks
(benchmark/mobilenet_v2.param and mobilenet_v3.param at c384bc1, 2020-06-12), which
they match layer for layer:
- `mobilenet_v2_caffe`: the Caffe MobileNet v2 of shicai/MobileNet-Caffe
  (mobilenet_v2_deploy.prototxt), whose first bottleneck (t=1) keeps a 1x1 "expansion"
  conv from 32 to 32 channels, and whose activations are ReLU, not ReLU6; with the
  strides of the paper's revised Table 2 (ncnn fixed the prototxt's, Tencent/ncnn#327).
  3,505,960 parameters (1,088 more than torchvision's), 0.314 GMACs instead of 0.301.
- `mobilenet_v3_large_arxiv_v1`: MobileNet v3-Large as Table 1 of the paper's first
  arXiv version (1905.02244v1) lists it, in the PyTorch form of d-li14/mobilenetv3.pytorch
  (commit 0eaaa82, 2019-05-18): the last stride-2 block is the 14th, not the 13th (so
  the 13th runs at 14x14), and the 14th expands to 672 channels, not 960; SE squeezes
  to exactly C/4 channels (not rounded to a multiple of 8) and sits between the
  depthwise BN and its activation; after the global pool a hard-swish. 5,145,318
  parameters, 0.246 GMACs (torchvision's v3-Large: 5,483,032 and 0.217).

This module also holds the three building blocks torchvision keeps in
`torchvision.models._utils` and `torchvision.ops.misc` (`make_divisible`,
`Conv2dNormActivation`, `SqueezeExcitation`): MobileNet is where they come from, and
`efficientnet` and `regnet` import them from here rather than redefining them. About 410 lines:
three architectures and those blocks, as torchvision defines them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
from torch import nn


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """Round `v` to the nearest multiple of `divisor`, never more than 10% down.

    torchvision's `_make_divisible`, from the TensorFlow MobileNet code: channel counts
    that are multiples of 8 map well onto hardware vector widths.
    """
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """Conv2d (no bias) -> norm -> activation, as torchvision's `ops.Conv2dNormActivation`.

    Children are named "0", "1", "2" as in torchvision. Padding keeps the spatial size
    at stride 1: (kernel_size - 1) // 2 * dilation. `activation_layer=None` leaves the
    activation out (the linear projections of inverted residual blocks).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d,
                 activation_layer: Callable[..., nn.Module] | None = nn.ReLU, dilation: int = 1):
        padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                      dilation=dilation, groups=groups, bias=False),
            norm_layer(out_channels),
        ]
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """Channel attention of Hu et al. 2018, as torchvision's `ops.SqueezeExcitation`.

    x * scale_activation(fc2(activation(fc1(avgpool(x))))), with 1x1 convolutions as the
    two fully connected layers. MobileNet v3 uses a hard sigmoid as `scale_activation`,
    EfficientNet SiLU as `activation`.
    """

    def __init__(self, input_channels: int, squeeze_channels: int,
                 activation: Callable[..., nn.Module] = nn.ReLU,
                 scale_activation: Callable[..., nn.Module] = nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.avgpool(x)                                    # (N, C, 1, 1)
        scale = self.fc2(self.activation(self.fc1(scale)))         # (N, C, 1, 1)
        return self.scale_activation(scale) * x                    # (N, C, H, W)


def init_convs_and_norms_(model: nn.Module, nonlinearity: str = "leaky_relu") -> None:
    """He (fan-out) convolutions and unit batch norms, as torchvision's mobile models start."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity=nonlinearity)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _init_mobilenet_(model: nn.Module) -> None:
    """torchvision's MobileNet initialisation: He (fan-out) convs, unit BN, small linears."""
    init_convs_and_norms_(model)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------- v1

class MobileNetV1(nn.Module):
    """MobileNet v1, width 1.0: a 3x3 stem then 13 depthwise-separable blocks.

    Each block is a 3x3 depthwise conv-BN-ReLU then a 1x1 pointwise conv-BN-ReLU.
    The last block runs at stride 1: the "s2" in the paper's Table 1 at 7x7 is a typo
    (its output is still 7x7), and every implementation, like the 569 M MAC figure,
    uses stride 1 there.
    """

    # (out_channels, stride) of the 13 depthwise-separable blocks, Table 1 of the paper.
    BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
              (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [Conv2dNormActivation(3, 32, stride=2)]   # 224 -> 112
        c_in = 32
        for c_out, stride in self.BLOCKS:
            layers.append(nn.Sequential(
                Conv2dNormActivation(c_in, c_in, stride=stride, groups=c_in),   # depthwise
                Conv2dNormActivation(c_in, c_out, kernel_size=1),                # pointwise
            ))
            c_in = c_out
        self.features = nn.Sequential(*layers)                                 # -> (N, 1024, 7, 7)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)
        _init_mobilenet_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


# ---------------------------------------------------------------------------- v2

class InvertedResidual(nn.Module):
    """MobileNet v2 block: 1x1 expand (unless t=1), 3x3 depthwise, linear 1x1 project.

    The Caffe MobileNet v2 expands at t=1 too (`expand_t1`) and uses ReLU, not ReLU6.
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int,
                 activation_layer: Callable[..., nn.Module] = nn.ReLU6, expand_t1: bool = False):
        super().__init__()
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1 or expand_t1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1, activation_layer=activation_layer))
        layers += [
            Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim,
                                 activation_layer=activation_layer),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNet v2 as torchvision defines it (width 1.0, ReLU6, dropout 0.2), or as Caffe did."""

    # t (expansion), c (channels), n (repeats), s (stride of the first repeat): Table 2.
    SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2,
                 activation_layer: Callable[..., nn.Module] = nn.ReLU6, expand_t1: bool = False):
        super().__init__()
        input_channel = make_divisible(32 * width_mult, 8)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), 8)
        features: list[nn.Module] = [
            Conv2dNormActivation(3, input_channel, stride=2, activation_layer=activation_layer)]
        for t, c, n, s in self.SETTING:
            output_channel = make_divisible(c * width_mult, 8)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t,
                                                 activation_layer=activation_layer, expand_t1=expand_t1))
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1,
                                             activation_layer=activation_layer))
        self.features = nn.Sequential(*features)                 # -> (N, 1280, 7, 7)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        _init_mobilenet_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


# ---------------------------------------------------------------------------- v3

@dataclass(frozen=True)
class V3Block:
    """One row of Tables 1 and 2 of the MobileNet v3 paper (torchvision's InvertedResidualConfig)."""
    input_channels: int
    kernel: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    use_hs: bool      # hard-swish; ReLU otherwise
    stride: int


def _v3(inp: int, k: int, exp: int, out: int, se: bool, act: str, s: int) -> V3Block:
    adjust = partial(make_divisible, divisor=8)   # width 1.0: identity on these values, kept as torchvision has it
    return V3Block(adjust(inp), k, adjust(exp), adjust(out), se, act == "HS", s)


V3_LARGE = (
    _v3(16, 3, 16, 16, False, "RE", 1), _v3(16, 3, 64, 24, False, "RE", 2),
    _v3(24, 3, 72, 24, False, "RE", 1), _v3(24, 5, 72, 40, True, "RE", 2),
    _v3(40, 5, 120, 40, True, "RE", 1), _v3(40, 5, 120, 40, True, "RE", 1),
    _v3(40, 3, 240, 80, False, "HS", 2), _v3(80, 3, 200, 80, False, "HS", 1),
    _v3(80, 3, 184, 80, False, "HS", 1), _v3(80, 3, 184, 80, False, "HS", 1),
    _v3(80, 3, 480, 112, True, "HS", 1), _v3(112, 3, 672, 112, True, "HS", 1),
    _v3(112, 5, 672, 160, True, "HS", 2), _v3(160, 5, 960, 160, True, "HS", 1),
    _v3(160, 5, 960, 160, True, "HS", 1),
)
V3_SMALL = (
    _v3(16, 3, 16, 16, True, "RE", 2), _v3(16, 3, 72, 24, False, "RE", 2),
    _v3(24, 3, 88, 24, False, "RE", 1), _v3(24, 5, 96, 40, True, "HS", 2),
    _v3(40, 5, 240, 40, True, "HS", 1), _v3(40, 5, 240, 40, True, "HS", 1),
    _v3(40, 5, 120, 48, True, "HS", 1), _v3(48, 5, 144, 48, True, "HS", 1),
    _v3(48, 5, 288, 96, True, "HS", 2), _v3(96, 5, 576, 96, True, "HS", 1),
    _v3(96, 5, 576, 96, True, "HS", 1),
)


class InvertedResidualV3(nn.Module):
    """MobileNet v3 block: expand, depthwise, optional SE (hard sigmoid), linear project."""

    def __init__(self, cnf: V3Block, norm_layer: Callable[..., nn.Module]):
        super().__init__()
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        act = nn.Hardswish if cnf.use_hs else nn.ReLU
        conv = partial(Conv2dNormActivation, norm_layer=norm_layer)
        layers: list[nn.Module] = []
        if cnf.expanded_channels != cnf.input_channels:
            layers.append(conv(cnf.input_channels, cnf.expanded_channels, kernel_size=1, activation_layer=act))
        layers.append(conv(cnf.expanded_channels, cnf.expanded_channels, kernel_size=cnf.kernel,
                           stride=cnf.stride, groups=cnf.expanded_channels, activation_layer=act))
        if cnf.use_se:
            squeeze_channels = make_divisible(cnf.expanded_channels // 4, 8)
            layers.append(SqueezeExcitation(cnf.expanded_channels, squeeze_channels,
                                            scale_activation=nn.Hardsigmoid))
        layers.append(conv(cnf.expanded_channels, cnf.out_channels, kernel_size=1, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = cnf.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result += x
        return result


class MobileNetV3(nn.Module):
    """MobileNet v3 as torchvision defines it (BN eps 1e-3, momentum 0.01; dropout 0.2)."""

    def __init__(self, setting: tuple[V3Block, ...], last_channel: int, num_classes: int = 1000,
                 dropout: float = 0.2):
        super().__init__()
        norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        layers: list[nn.Module] = [Conv2dNormActivation(3, setting[0].input_channels, stride=2,
                                                        norm_layer=norm_layer, activation_layer=nn.Hardswish)]
        layers += [InvertedResidualV3(cnf, norm_layer) for cnf in setting]
        lastconv_in = setting[-1].out_channels
        lastconv_out = 6 * lastconv_in
        layers.append(Conv2dNormActivation(lastconv_in, lastconv_out, kernel_size=1,
                                           norm_layer=norm_layer, activation_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)                   # -> (N, 6 * C_last, 7, 7)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(lastconv_out, last_channel),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(last_channel, num_classes),
        )
        _init_mobilenet_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


# ------------------------------------------------------------- v3, arXiv v1

# Table 1 of arXiv:1905.02244v1: blocks 13 and 14 differ from the revised table (V3_LARGE).
V3_LARGE_ARXIV_V1 = V3_LARGE[:12] + (
    _v3(112, 5, 672, 160, True, "HS", 1), _v3(160, 5, 672, 160, True, "HS", 2),
    _v3(160, 5, 960, 160, True, "HS", 1),
)


class InvertedResidualV3ArxivV1(nn.Module):
    """The v3 block of d-li14/mobilenetv3.pytorch (0eaaa82): SE on C/4, before the depthwise activation.

    Expand (unless the widths agree), depthwise conv-BN, SE, activation, linear project.
    Without SE the block is torchvision's. BN keeps PyTorch's defaults, as d-li14's does.
    """

    def __init__(self, cnf: V3Block):
        super().__init__()
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        act = nn.Hardswish if cnf.use_hs else nn.ReLU
        exp = cnf.expanded_channels
        layers: list[nn.Module] = []
        if exp != cnf.input_channels:
            layers.append(Conv2dNormActivation(cnf.input_channels, exp, kernel_size=1, activation_layer=act))
        if cnf.use_se:
            layers += [Conv2dNormActivation(exp, exp, kernel_size=cnf.kernel, stride=cnf.stride, groups=exp,
                                            activation_layer=None),
                       SqueezeExcitation(exp, exp // 4, scale_activation=nn.Hardsigmoid),
                       act(inplace=True)]
        else:
            layers.append(Conv2dNormActivation(exp, exp, kernel_size=cnf.kernel, stride=cnf.stride, groups=exp,
                                               activation_layer=act))
        layers.append(Conv2dNormActivation(exp, cnf.out_channels, kernel_size=1, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = cnf.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.block(x)
        return self.block(x)


class MobileNetV3LargeArxivV1(nn.Module):
    """MobileNet v3-Large of arXiv:1905.02244v1 as d-li14/mobilenetv3.pytorch builds it (no dropout)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        setting = V3_LARGE_ARXIV_V1
        layers: list[nn.Module] = [Conv2dNormActivation(3, setting[0].input_channels, stride=2,
                                                        activation_layer=nn.Hardswish)]
        layers += [InvertedResidualV3ArxivV1(cnf) for cnf in setting]
        layers.append(Conv2dNormActivation(setting[-1].out_channels, 960, kernel_size=1,
                                           activation_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)                   # -> (N, 960, 7, 7)
        # a hard-swish after the pool as well as before it, as d-li14 (and ncnn's graph) has it
        self.avgpool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Hardswish(inplace=True))
        self.classifier = nn.Sequential(
            nn.Linear(960, 1280),
            nn.Hardswish(inplace=True),
            nn.Linear(1280, num_classes),
        )
        _init_mobilenet_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v1(*, num_classes: int = 1000) -> MobileNetV1:
    return MobileNetV1(num_classes=num_classes)


def mobilenet_v2(*, num_classes: int = 1000) -> MobileNetV2:
    return MobileNetV2(num_classes=num_classes)


def mobilenet_v2_caffe(*, num_classes: int = 1000) -> MobileNetV2:
    return MobileNetV2(num_classes=num_classes, activation_layer=nn.ReLU, expand_t1=True)


def mobilenet_v3_large(*, num_classes: int = 1000) -> MobileNetV3:
    return MobileNetV3(V3_LARGE, make_divisible(1280, 8), num_classes=num_classes)


def mobilenet_v3_small(*, num_classes: int = 1000) -> MobileNetV3:
    return MobileNetV3(V3_SMALL, make_divisible(1024, 8), num_classes=num_classes)


def mobilenet_v3_large_arxiv_v1(*, num_classes: int = 1000) -> MobileNetV3LargeArxivV1:
    return MobileNetV3LargeArxivV1(num_classes=num_classes)

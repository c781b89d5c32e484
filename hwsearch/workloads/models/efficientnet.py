"""EfficientNet-B0 for 224x224 ImageNet, as torchvision 0.2x defines it.

Tan and Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks" (arXiv:1905.11946). Same modules in the same order as
`torchvision.models.efficientnet_b0`: `features` (stem, seven stages of MBConv blocks
with squeeze-excitation and SiLU, a 1x1 head conv to 1280), `avgpool`, `classifier`
(dropout 0.2, linear); randomly initialised as torchvision does.

Stochastic depth (Huang et al. 2016) drops a block's residual branch per example in
training, with a probability rising linearly from 0 to 0.2 over the blocks. `StochasticDepth`
is a small equivalent of `torchvision.ops.StochasticDepth`: identity in eval mode, where
it leaves no node in the fx graph at all; in training its random part is an fx leaf
function, so the model traces in both modes.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.fx
from torch import nn

from hwsearch.workloads.models.mobilenet import Conv2dNormActivation, SqueezeExcitation, init_convs_and_norms_, make_divisible


def drop_rows(x: torch.Tensor, p: float) -> torch.Tensor:
    """Zero whole examples with probability p and rescale the rest by 1 / (1 - p)."""
    survival_rate = 1.0 - p
    noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device)  # (N, 1, 1, 1)
    noise = noise.bernoulli_(survival_rate)
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return x * noise


# The shape arithmetic above cannot run on fx proxies: trace the call as one leaf node.
torch.fx.wrap("drop_rows")


class StochasticDepth(nn.Module):
    """torchvision's `StochasticDepth(p, "row")`: per-example residual dropout in training only."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # self.training and self.p are Python values, so fx specialises this branch away.
        if not self.training or self.p == 0.0:
            return x
        return drop_rows(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode=row"


@dataclass
class MBConvConfig:
    """One row of Table 1 of the paper (torchvision's MBConvConfig at width and depth 1.0)."""
    expand_ratio: float
    kernel: int
    stride: int
    input_channels: int
    out_channels: int
    num_layers: int

    @staticmethod
    def adjust_channels(channels: float, width_mult: float) -> int:
        return make_divisible(channels * width_mult, 8)


class MBConv(nn.Module):
    """1x1 expand (unless ratio 1), kxk depthwise, SE on input_channels // 4, linear 1x1 project."""

    def __init__(self, cnf: MBConvConfig, stochastic_depth_prob: float, norm_layer=nn.BatchNorm2d):
        super().__init__()
        if not 1 <= cnf.stride <= 2:
            raise ValueError(f"illegal stride value {cnf.stride}")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        conv = partial(Conv2dNormActivation, norm_layer=norm_layer)
        layers: list[nn.Module] = []
        expanded = cnf.adjust_channels(cnf.input_channels, cnf.expand_ratio)
        if expanded != cnf.input_channels:
            layers.append(conv(cnf.input_channels, expanded, kernel_size=1, activation_layer=nn.SiLU))
        layers.append(conv(expanded, expanded, kernel_size=cnf.kernel, stride=cnf.stride, groups=expanded,
                           activation_layer=nn.SiLU))
        squeeze_channels = max(1, cnf.input_channels // 4)
        layers.append(SqueezeExcitation(expanded, squeeze_channels, activation=partial(nn.SiLU, inplace=True)))
        layers.append(conv(expanded, cnf.out_channels, kernel_size=1, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)
        self.out_channels = cnf.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result += x
        return result


# expand ratio, kernel, stride, in, out, repeats: Table 1 of the paper (B0).
B0_SETTING = (
    MBConvConfig(1, 3, 1, 32, 16, 1),
    MBConvConfig(6, 3, 2, 16, 24, 2),
    MBConvConfig(6, 5, 2, 24, 40, 2),
    MBConvConfig(6, 3, 2, 40, 80, 3),
    MBConvConfig(6, 5, 1, 80, 112, 3),
    MBConvConfig(6, 5, 2, 112, 192, 4),
    MBConvConfig(6, 3, 1, 192, 320, 1),
)


class EfficientNet(nn.Module):
    def __init__(self, setting: tuple[MBConvConfig, ...], dropout: float, stochastic_depth_prob: float = 0.2,
                 num_classes: int = 1000, norm_layer=nn.BatchNorm2d):
        super().__init__()
        layers: list[nn.Module] = [Conv2dNormActivation(3, setting[0].input_channels, kernel_size=3, stride=2,
                                                        norm_layer=norm_layer, activation_layer=nn.SiLU)]
        total_stage_blocks = sum(cnf.num_layers for cnf in setting)
        stage_block_id = 0
        for cnf in setting:
            stage: list[nn.Module] = []
            for _ in range(cnf.num_layers):
                block_cnf = copy.copy(cnf)
                if stage:   # only the first block of a stage changes channels and resolution
                    block_cnf.input_channels = block_cnf.out_channels
                    block_cnf.stride = 1
                sd_prob = stochastic_depth_prob * float(stage_block_id) / total_stage_blocks
                stage.append(MBConv(block_cnf, sd_prob, norm_layer))
                stage_block_id += 1
            layers.append(nn.Sequential(*stage))
        lastconv_in = setting[-1].out_channels
        lastconv_out = 4 * lastconv_in
        layers.append(Conv2dNormActivation(lastconv_in, lastconv_out, kernel_size=1, norm_layer=norm_layer,
                                           activation_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)                               # -> (N, 1280, 7, 7)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(lastconv_out, num_classes))
        init_convs_and_norms_(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                init_range = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -init_range, init_range)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def efficientnet_b0(*, num_classes: int = 1000) -> EfficientNet:
    return EfficientNet(B0_SETTING, dropout=0.2, num_classes=num_classes)

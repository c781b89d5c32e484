"""RegNetY-400MF for 224x224 ImageNet, as torchvision 0.2x defines it.

Radosavovic et al. 2020, "Designing Network Design Spaces" (arXiv:2003.13678). Same
modules in the same order as `torchvision.models.regnet_y_400mf` (stem,
trunk_output.block1..block4 of ResBottleneckBlocks named "block{stage}-{i}", avgpool,
fc), randomly initialised as torchvision does.

The per-stage widths and depths come from the paper's quantized linear rule with
torchvision's parameters for RegNetY-400MF: depth 16, w_0 48, w_a 27.89, w_m 2.09,
group width 8, bottleneck ratio 1, SE ratio 0.25 (relative to the block input). They
give widths (48, 104, 208, 440) and depths (1, 3, 6, 6). The rule runs in float32 torch
arithmetic exactly as torchvision runs it, because rounding near .5 could otherwise flip
a width.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from hwsearch.workloads.models.mobilenet import Conv2dNormActivation, SqueezeExcitation, make_divisible


@dataclass(frozen=True)
class Stage:
    width: int
    depth: int
    stride: int
    group_width: int
    bottleneck_multiplier: float


def block_params(depth: int, w_0: int, w_a: float, w_m: float, group_width: int,
                 bottleneck_multiplier: float = 1.0) -> list[Stage]:
    """torchvision's `BlockParams.from_init_params`: per-block widths, grouped into stages."""
    quant, stride = 8, 2
    if w_a < 0 or w_0 <= 0 or w_m <= 1 or w_0 % 8 != 0:
        raise ValueError(f"invalid RegNet settings w_0={w_0}, w_a={w_a}, w_m={w_m}")
    # Linear widths u_j = w_0 + w_a * j, snapped to w_0 * w_m^k and quantized to multiples of 8.
    widths_cont = torch.arange(depth) * w_a + w_0
    block_capacity = torch.round(torch.log(widths_cont / w_0) / math.log(w_m))
    block_widths = (torch.round(torch.divide(w_0 * torch.pow(w_m, block_capacity), quant)) * quant).int().tolist()
    # A stage is a run of equal widths.
    splits = [w != wp for w, wp in zip(block_widths + [0], [0] + block_widths)]
    stage_widths = [w for w, t in zip(block_widths, splits[:-1]) if t]
    stage_depths = torch.diff(torch.tensor([d for d, t in enumerate(splits) if t])).int().tolist()
    # Make each bottleneck width a multiple of its group width (torchvision's compatibility fix).
    stages = []
    for w, d in zip(stage_widths, stage_depths):
        w_bot = int(w * bottleneck_multiplier)
        g = min(group_width, w_bot)
        w = int(make_divisible(w_bot, g) / bottleneck_multiplier)
        stages.append(Stage(w, d, stride, g, bottleneck_multiplier))
    return stages


class BottleneckTransform(nn.Sequential):
    """a: 1x1, b: 3x3 grouped (carries the stride), se: squeeze-excitation, c: linear 1x1."""

    def __init__(self, width_in: int, width_out: int, stride: int, group_width: int,
                 bottleneck_multiplier: float, se_ratio: float | None):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        w_b = int(round(width_out * bottleneck_multiplier))
        g = w_b // group_width
        layers["a"] = Conv2dNormActivation(width_in, w_b, kernel_size=1)
        layers["b"] = Conv2dNormActivation(w_b, w_b, kernel_size=3, stride=stride, groups=g)
        if se_ratio:
            # The SE reduction is relative to the width at the start of the block.
            layers["se"] = SqueezeExcitation(w_b, int(round(se_ratio * width_in)), activation=nn.ReLU)
        layers["c"] = Conv2dNormActivation(w_b, width_out, kernel_size=1, activation_layer=None)
        super().__init__(layers)


class ResBottleneckBlock(nn.Module):
    """x + F(x), with a 1x1 projection on the shortcut when the shape changes."""

    def __init__(self, width_in: int, width_out: int, stride: int, group_width: int = 1,
                 bottleneck_multiplier: float = 1.0, se_ratio: float | None = None):
        super().__init__()
        self.proj = None
        if width_in != width_out or stride != 1:
            self.proj = Conv2dNormActivation(width_in, width_out, kernel_size=1, stride=stride, activation_layer=None)
        self.f = BottleneckTransform(width_in, width_out, stride, group_width, bottleneck_multiplier, se_ratio)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            x = self.proj(x) + self.f(x)
        else:
            x = x + self.f(x)
        return self.activation(x)


class AnyStage(nn.Sequential):
    """`depth` blocks named "block{stage_index}-{i}"; only the first changes shape."""

    def __init__(self, width_in: int, stage: Stage, se_ratio: float | None, stage_index: int):
        super().__init__()
        for i in range(stage.depth):
            block = ResBottleneckBlock(width_in if i == 0 else stage.width, stage.width,
                                       stage.stride if i == 0 else 1, stage.group_width,
                                       stage.bottleneck_multiplier, se_ratio)
            self.add_module(f"block{stage_index}-{i}", block)


class RegNet(nn.Module):
    def __init__(self, stages: list[Stage], se_ratio: float | None, num_classes: int = 1000, stem_width: int = 32):
        super().__init__()
        self.stem = Conv2dNormActivation(3, stem_width, kernel_size=3, stride=2)   # torchvision's SimpleStemIN
        current_width, blocks = stem_width, []
        for i, stage in enumerate(stages):
            blocks.append((f"block{i + 1}", AnyStage(current_width, stage, se_ratio, stage_index=i + 1)))
            current_width = stage.width
        self.trunk_output = nn.Sequential(OrderedDict(blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_features=current_width, out_features=num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.trunk_output(self.stem(x))                                  # (N, 440, 7, 7)
        x = self.avgpool(x).flatten(start_dim=1)
        return self.fc(x)


def regnet_y_400mf(*, num_classes: int = 1000) -> RegNet:
    stages = block_params(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8)
    return RegNet(stages, se_ratio=0.25, num_classes=num_classes)

"""ShuffleNet V2 1.0x for 224x224 ImageNet, as torchvision 0.2x defines it.

Ma et al. 2018, "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design" (arXiv:1807.11164). Same modules in the same order as
`torchvision.models.shufflenet_v2_x1_0` (conv1, maxpool, stage2..stage4, conv5, fc),
with PyTorch's default initialisation as torchvision leaves it.

The channel shuffle is torchvision's view-transpose-view; torch.fx traces `x.size()`
and the tuple unpacking of it as call_method/getitem nodes, so the model traces
symbolically without a leaf module.
"""
from __future__ import annotations

import torch
from torch import nn


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of `groups` groups, so that the next split mixes both branches."""
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)          # (N, g, C/g, H, W)
    x = torch.transpose(x, 1, 2).contiguous()                                # (N, C/g, g, H, W)
    return x.view(batchsize, num_channels, height, width)


def depthwise_conv(i: int, o: int, kernel_size: int, stride: int = 1, padding: int = 0) -> nn.Conv2d:
    return nn.Conv2d(i, o, kernel_size, stride, padding, bias=False, groups=i)


class InvertedResidual(nn.Module):
    """Stride 1: split channels, transform one half. Stride 2: transform two copies of the input."""

    def __init__(self, inp: int, oup: int, stride: int):
        super().__init__()
        self.stride = stride
        branch_features = oup // 2
        if stride == 1 and inp != branch_features << 1:
            raise ValueError(f"a stride-1 ShuffleNet block needs inp == oup, got {inp} and {oup}")
        if stride > 1:
            self.branch1 = nn.Sequential(
                depthwise_conv(inp, inp, kernel_size=3, stride=stride, padding=1),
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch_features, kernel_size=1, stride=1, padding=0, bias=False),
                nn.BatchNorm2d(branch_features),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch_features, branch_features, kernel_size=1, stride=1,
                      padding=0, bias=False),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=True),
            depthwise_conv(branch_features, branch_features, kernel_size=3, stride=stride, padding=1),
            nn.BatchNorm2d(branch_features),
            nn.Conv2d(branch_features, branch_features, kernel_size=1, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)                                       # two (N, C/2, H, W)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, stages_repeats: tuple[int, int, int], stages_out_channels: tuple[int, ...],
                 num_classes: int = 1000):
        super().__init__()
        input_channels, output_channels = 3, stages_out_channels[0]
        self.conv1 = nn.Sequential(
            nn.Conv2d(input_channels, output_channels, 3, 2, 1, bias=False),
            nn.BatchNorm2d(output_channels),
            nn.ReLU(inplace=True),
        )
        input_channels = output_channels
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)     # 112 -> 56
        for name, repeats, output_channels in zip(("stage2", "stage3", "stage4"), stages_repeats,
                                                  stages_out_channels[1:]):
            seq = [InvertedResidual(input_channels, output_channels, 2)]
            seq += [InvertedResidual(output_channels, output_channels, 1) for _ in range(repeats - 1)]
            setattr(self, name, nn.Sequential(*seq))
            input_channels = output_channels
        output_channels = stages_out_channels[-1]
        self.conv5 = nn.Sequential(
            nn.Conv2d(input_channels, output_channels, 1, 1, 0, bias=False),
            nn.BatchNorm2d(output_channels),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(output_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))                                      # (N, 24, 56, 56)
        x = self.stage4(self.stage3(self.stage2(x)))                         # (N, 464, 7, 7)
        x = self.conv5(x).mean([2, 3])                                       # global pool: (N, 1024)
        return self.fc(x)


def shufflenet_v2_x1_0(*, num_classes: int = 1000) -> ShuffleNetV2:
    return ShuffleNetV2((4, 8, 4), (24, 116, 232, 464, 1024), num_classes=num_classes)

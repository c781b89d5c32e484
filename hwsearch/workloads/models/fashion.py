"""The models hwsearch trains on Fashion-MNIST (28x28 grayscale, 10 classes): a residual net and a
mobile net sized for it, beside the papers' LeNets (`digits.LeNet5Caffe`, `digits.LeNet300100`).

Widths are chosen so that each trains in minutes on two cores and its fp32 file is a few hundred
KB to a few MB: size budgets from mild to tight then bind at different layers.
"""
from __future__ import annotations

from torch import nn

from hwsearch.workloads.models.digits import BasicBlock


class ResNetFashion(nn.Module):
    """A ResNet for 28x28: a 3x3 stem, three stages of basic blocks (28x28, 14x14, 7x7), global
    average pooling and one linear layer. Widths (24, 48, 96), blocks (1, 2, 2)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: tuple[int, ...] = (24, 48, 96),
                 blocks: tuple[int, ...] = (1, 2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages, c_in = [], widths[0]
        for i, (width, count) in enumerate(zip(widths, blocks)):
            layers = []
            for j in range(count):
                layers.append(BasicBlock(c_in, width, 2 if (i > 0 and j == 0) else 1))
                c_in = width
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):                                    # x: (N, 1, 28, 28)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))         # (N, 96, 7, 7)
        return self.fc(self.pool(x).flatten(1))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, 3x3 depthwise, 1x1 projection (linear), a skip when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        self.use_skip = stride == 1 and c_in == c_out
        self.block = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = self.block(x)
        return x + out if self.use_skip else out


class MobileNetFashion(nn.Module):
    """A MobileNetV2 for 28x28: a 3x3 stem, inverted residual blocks (expansion 4) from 14x14 down to
    7x7, a 1x1 conv to 192 channels, global average pooling and one linear layer."""

    # (out channels, stride, repeats): the first block halves the 28x28 stem output
    SETTINGS = ((24, 2, 2), (48, 2, 2), (96, 1, 2))

    def __init__(self, in_channels: int = 1, num_classes: int = 10, expand: int = 4, stem: int = 16,
                 last: int = 192):
        super().__init__()
        layers = [nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU6(inplace=True)]
        c_in = stem
        for c_out, stride, repeats in self.SETTINGS:
            for j in range(repeats):
                layers.append(InvertedResidual(c_in, c_out, stride if j == 0 else 1, expand))
                c_in = c_out
        layers += [nn.Conv2d(c_in, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x):                                    # x: (N, 1, 28, 28)
        return self.classifier(self.pool(self.features(x)).flatten(1))

"""The built-in digits models, defined here because no weights can be downloaded.

`resnet18` follows He et al. (2016) with the stem adapted to 8x8 digits: a 3x3
stride-1 convolution and no max-pool, so the four stages run at 8, 4, 2 and 1 pixels.
It keeps ResNet-18's 11.2 M parameters (44.7 MB in fp32), four times the default
10 MB budget, so the budget binds and needs more than one technique.
`lenet5` (LeCun et al. 1998, padded for 8x8 input) is the small model tests use.

The papers' own small networks, for the digits resized to the input they were built for
(benchmarks/paper_tables.py reproduces their compression tables):
`lenet300_100` (784-300-100-10 on 28x28, 266 K weights) and `lenet5_caffe` (Caffe's LeNet-5,
20 and 50 5x5 filters, fc 800-500-10 on 28x28, 431 K weights), the two Deep Compression
compresses; `vgg_small` (a VGG-style conv stack and two fully connected layers on 16x16).
"""
from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        widths, strides, c_in = (64, 128, 256, 512), (1, 2, 2, 2), 64
        for i, (width, stride) in enumerate(zip(widths, strides), start=1):
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(c_in, width, stride), BasicBlock(width, width, 1)))
            c_in = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class LeNet5(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2)    # 8x8 -> 8x8
        self.conv2 = nn.Conv2d(6, 16, 3, padding=1)             # 4x4 -> 4x4
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 2 * 2, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))


class LeNet300100(nn.Module):
    def __init__(self, in_pixels: int = 28 * 28, num_classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(in_pixels, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x):                                   # x: (N, 1, 28, 28)
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc3(torch.relu(self.fc2(x)))


class LeNet5Caffe(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, 5)          # 28x28 -> 24x24, pooled to 12x12
        self.conv2 = nn.Conv2d(20, 50, 5)                   # 12x12 -> 8x8, pooled to 4x4
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(50 * 4 * 4, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x):                                   # x: (N, 1, 28, 28)
        x = self.pool(self.conv1(x))
        x = self.pool(self.conv2(x))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


class VGGSmall(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        layers, c_in = [], in_channels
        for width in widths:                                # two 3x3 convs per stage, then a 2x2 max-pool
            layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                       nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c_in = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(c_in * 2 * 2, 256), nn.ReLU(inplace=True), nn.Dropout(0.5),
                                        nn.Linear(256, num_classes))

    def forward(self, x):                                   # x: (N, 1, 16, 16) -> features (N, 128, 2, 2)
        return self.classifier(torch.flatten(self.features(x), 1))

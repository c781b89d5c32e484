"""ResNet-18 and ResNet-50 for 224x224 ImageNet, as torchvision 0.2x defines them, and ResNet-50 v1.

He et al. 2016, "Deep Residual Learning for Image Recognition" (arXiv:1512.03385).
Same modules in the same order as `torchvision.models.resnet` (conv1, bn1, relu,
maxpool, layer1..layer4, avgpool, fc; blocks with conv/bn pairs and a `downsample`
projection), so parameter names, counts and MACs match torchvision's. Randomly
initialised as torchvision does. The stride sits on the 3x3 conv of a bottleneck
(the "ResNet v1.5" torchvision uses), not on its first 1x1 conv.

`resnet50_v1` is ResNet-50 as the authors released it in Caffe
(KaimingHe/deep-residual-networks, ResNet-50-deploy.prototxt): the stride of a
downsampling bottleneck sits on its first 1x1 conv, so its 3x3 conv runs at the
lower resolution: 3.858 GMACs instead of 4.089, with the same 25,557,032 parameters.
It is the network of Tencent/ncnn's benchmark/resnet50.param (c384bc1, 2020-06-12),
whose 53 convolutions and fc it matches shape for shape; ncnn folds each BatchNorm
into its convolution (25,530,472 weights and biases = our parameters less the BN
scales). Caffe's pool1 has no padding and rounds up; its output is 56x56 like
torchvision's padded max-pool, which we keep.

The 8x8 digits variant the default job trains is `digits.ResNet18`, not this one.
"""
from __future__ import annotations

import torch
from torch import nn


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and an identity (or 1x1 projection) shortcut: ResNet-18/34."""
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand by 4: ResNet-50 and deeper."""
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class BottleneckV1(Bottleneck):
    """A bottleneck with the stride on its first 1x1 conv: the original Caffe ResNet-50 ("v1")."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__(inplanes, planes, downsample=downsample)
        self.conv1 = conv1x1(inplanes, planes, stride)      # the 3x3 conv2 keeps stride 1


class ResNet(nn.Module):
    """7x7 stem, max-pool, four stages of residual blocks at 56, 28, 14 and 7 pixels."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int],
                 num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)      # 112 -> 56
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))                 # (N, 64, 56, 56)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))            # (N, 512 * exp, 7, 7)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(*, num_classes: int = 1000) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes=num_classes)


def resnet50(*, num_classes: int = 1000) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes)


def resnet50_v1(*, num_classes: int = 1000) -> ResNet:
    return ResNet(BottleneckV1, (3, 4, 6, 3), num_classes=num_classes)

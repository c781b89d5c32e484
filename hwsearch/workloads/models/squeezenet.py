"""SqueezeNet 1.0 and 1.1 for 224x224 ImageNet, as torchvision 0.2x defines them.

Iandola et al. 2016, "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and
<0.5MB model size" (arXiv:1602.07360); 1.1 is the variant of the SqueezeNet GitHub
repository (3x3 stem, earlier pooling: 2.4x fewer MACs, same accuracy). Same modules
in the same order as `torchvision.models.squeezenet`, randomly initialised as
torchvision does. There is no linear layer: a 1x1 conv to the classes, ReLU and
global average pooling classify.

`squeezenet1_1_conv10_pad1` is SqueezeNet 1.1 with its classifying 1x1 conv (conv10)
padded by 1, as SqueezeNet 1.0's Caffe prototxt has it (forresti/SqueezeNet
SqueezeNet_v1.0/deploy.prototxt) and as Tencent/ncnn's examples/squeezenet_v1.1.prototxt
and benchmark/squeezenet.param (c384bc1, 2020-06-12) carry it into 1.1; the released 1.1
prototxt and torchvision do not pad it. The padding changes no weight
(1,235,496 parameters) but makes conv10 run on 16x16 instead of 14x14 at the 227x227
input ncnn benchmarks: 0.418 GMACs there instead of 0.388, 7.9% more. Padded
positions hold conv10's bias, which the ReLU and the global average pool then count.
"""
from __future__ import annotations

import torch
from torch import nn


class Fire(nn.Module):
    """1x1 squeeze, then 1x1 and 3x3 expands concatenated along channels."""

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int, expand3x3_planes: int):
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)   # (N, e1 + e3, H, W)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


class SqueezeNet(nn.Module):
    def __init__(self, version: str = "1_0", num_classes: int = 1000, dropout: float = 0.5,
                 final_conv_padding: int = 0):
        super().__init__()
        self.num_classes = num_classes
        if version == "1_0":
            self.features = nn.Sequential(
                nn.Conv2d(3, 96, kernel_size=7, stride=2), nn.ReLU(inplace=True), _pool(),   # 224 -> 109 -> 54
                Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), _pool(),
                Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256), _pool(),
                Fire(512, 64, 256, 256),
            )
        elif version == "1_1":
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, kernel_size=3, stride=2), nn.ReLU(inplace=True), _pool(),   # 224 -> 111 -> 55
                Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), _pool(),
                Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), _pool(),
                Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
            )
        else:
            raise ValueError(f"SqueezeNet version {version!r}: choose '1_0' or '1_1'")
        final_conv = nn.Conv2d(512, num_classes, kernel_size=1, padding=final_conv_padding)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.classifier(self.features(x))         # (N, num_classes, 1, 1)
        return torch.flatten(x, 1)


def squeezenet1_0(*, num_classes: int = 1000) -> SqueezeNet:
    return SqueezeNet("1_0", num_classes=num_classes)


def squeezenet1_1(*, num_classes: int = 1000) -> SqueezeNet:
    return SqueezeNet("1_1", num_classes=num_classes)


def squeezenet1_1_conv10_pad1(*, num_classes: int = 1000) -> SqueezeNet:
    return SqueezeNet("1_1", num_classes=num_classes, final_conv_padding=1)

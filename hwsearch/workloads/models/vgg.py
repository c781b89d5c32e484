"""VGG-16 (configuration D, no BatchNorm) for 224x224 ImageNet, as torchvision 0.2x defines it.

Simonyan and Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image
Recognition" (arXiv:1409.1556). Same modules in the same order as
`torchvision.models.vgg16`: `features` (3x3 convs with ReLU, 2x2 max-pools), a 7x7
adaptive average pool, and a three-layer `classifier` with dropout. Randomly
initialised as torchvision does. 138 M parameters, 89% of them in the classifier.
"""
from __future__ import annotations

import torch
from torch import nn

# Output channels of each 3x3 conv, "M" a 2x2 max-pool: configuration D of Table 1.
CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def make_features(cfg: tuple[int | str, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))            # (N, 512, 7, 7)
        return self.classifier(torch.flatten(x, 1))


def vgg16(*, num_classes: int = 1000) -> VGG:
    return VGG(make_features(CFG_D), num_classes=num_classes)

"""AlexNet for 224x224 ImageNet, as torchvision 0.2x defines it.

Krizhevsky et al. 2012, "ImageNet Classification with Deep Convolutional Neural
Networks", in the single-tower form of Krizhevsky 2014, "One weird trick for
parallelizing convolutional neural networks" (arXiv:1404.5997) that torchvision
implements: 64-192-384-256-256 filters, no local response normalisation. Same
modules in the same order as `torchvision.models.alexnet`, with PyTorch's default
initialisation as torchvision leaves it.
"""
from __future__ import annotations

import torch
from torch import nn


class AlexNet(nn.Module):
    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),      # 224 -> 55
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),                      # -> 27
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),                      # -> 13
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),                      # -> 6
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))            # (N, 256, 6, 6)
        return self.classifier(torch.flatten(x, 1))


def alexnet(*, num_classes: int = 1000) -> AlexNet:
    return AlexNet(num_classes=num_classes)

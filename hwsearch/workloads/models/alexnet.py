"""AlexNet for 224x224 ImageNet, as torchvision 0.2x defines it, and the BVLC Caffe AlexNet.

Krizhevsky et al. 2012, "ImageNet Classification with Deep Convolutional Neural
Networks", in the single-tower form of Krizhevsky 2014, "One weird trick for
parallelizing convolutional neural networks" (arXiv:1404.5997) that torchvision
implements: 64-192-384-256-256 filters, no local response normalisation. Same
modules in the same order as `torchvision.models.alexnet`, with PyTorch's default
initialisation as torchvision leaves it.

`alexnet_bvlc` is the two-tower network of the 2012 paper as BVLC's Caffe reference
model has it (BVLC/caffe models/bvlc_alexnet/deploy.prototxt) for 227x227 input:
96-256-384-384-256 filters, conv2, conv4 and conv5 in two groups (the two GPUs),
local response normalisation after the first two ReLUs, overlapping max-pools
that round up, and no padding on conv1. 60,965,224 parameters; 0.724 GMACs at
227x227 (torchvision's AlexNet: 0.717 GMACs at 227, 0.714 at 224). It is the network of
Tencent/ncnn's benchmark/alexnet.param (c384bc1, 2020-06-12), layer for layer. It
keeps PyTorch's default initialisation. At 224x224 it also runs (conv1 gives 54x54, the
pools round up to 27, 13, 6).
"""
from __future__ import annotations

from functools import partial

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


class AlexNetBVLC(nn.Module):
    """The BVLC Caffe AlexNet: grouped conv2/4/5, LRN, no padding on conv1, 227x227 input."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        # Caffe's LRN: x / (k + alpha / n * sum of x^2 over n channels)^beta, as LocalResponseNorm computes it.
        lrn = partial(nn.LocalResponseNorm, size=5, alpha=1e-4, beta=0.75, k=1.0)
        pool = partial(nn.MaxPool2d, kernel_size=3, stride=2, ceil_mode=True)
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=11, stride=4),                 # 227 -> 55
            nn.ReLU(inplace=True),
            lrn(),
            pool(),                                                     # -> 27
            nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2),
            nn.ReLU(inplace=True),
            lrn(),
            pool(),                                                     # -> 13
            nn.Conv2d(256, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            pool(),                                                     # -> 6
        )
        self.classifier = nn.Sequential(
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)                          # (N, 256, 6, 6)
        return self.classifier(torch.flatten(x, 1))


def alexnet_bvlc(*, num_classes: int = 1000) -> AlexNetBVLC:
    return AlexNetBVLC(num_classes=num_classes)

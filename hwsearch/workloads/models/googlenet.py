"""GoogLeNet (Inception v1) for 224x224 ImageNet, as torchvision 0.2x and as BVLC define it, without aux heads.

Szegedy et al. 2015, "Going Deeper with Convolutions" (arXiv:1409.4842), in
torchvision's form: BatchNorm after every convolution (eps 1e-3), and in the "5x5"
branch of each Inception module a 3x3 convolution, a known torchvision bug that its
published weights, parameter count and MACs all carry; we keep it so that the numbers
match.

Two deliberate differences from `torchvision.models.googlenet(weights=None)`:
- no auxiliary classifiers (aux_logits=False). torchvision's builder defaults to
  aux_logits=True without weights, but the heads only run in training and are deleted
  when pretrained weights load; the eval graph, which is what hwsearch costs, and
  torchvision's documented 6,624,904 parameters are those of the model without them.
- no `transform_input` (torchvision sets it only with its pretrained weights, to
  re-normalise inputs). It is elementwise and would not change any count.
Otherwise the same modules in the same order, randomly initialised as torchvision does.

`googlenet_bvlc` is the network as the paper has it, in BVLC's Caffe reference model
(BVLC/caffe models/bvlc_googlenet/deploy.prototxt): true 5x5 convolutions, biases and
no BatchNorm, local response normalisation after pool1 and after conv2's 3x3, 3x3
max-pools that round up (pool4 included), a 7x7 average pool and dropout 0.4.
6,998,552 parameters and 1.583 GMACs (torchvision's: 6,624,904 and 1.498). It is the
network of Tencent/ncnn's benchmark/googlenet.param (c384bc1, 2020-06-12), layer for
layer. It keeps PyTorch's default initialisation.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BN (eps 1e-3) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class ConvReLU(nn.Module):
    """Conv (with bias) -> ReLU: the BVLC GoogLeNet has no BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x), inplace=True)


class Inception(nn.Module):
    """Four parallel branches (1x1; 1x1-3x3; 1x1-5x5; 3x3 max-pool-1x1) concatenated.

    torchvision's "5x5" branch is a 3x3 (`five_kernel=3`, the default); BVLC's is 5x5.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int,
                 ch5x5red: int, ch5x5: int, pool_proj: int,
                 conv_block: type[nn.Module] = BasicConv2d, five_kernel: int = 3):
        super().__init__()
        self.branch1 = conv_block(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(conv_block(in_channels, ch3x3red, kernel_size=1),
                                     conv_block(ch3x3red, ch3x3, kernel_size=3, padding=1))
        # five_kernel=3 by default: torchvision's known bug (a 3x3 where the paper has 5x5), kept.
        self.branch3 = nn.Sequential(conv_block(in_channels, ch5x5red, kernel_size=1),
                                     conv_block(ch5x5red, ch5x5, kernel_size=five_kernel, padding=five_kernel // 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     conv_block(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(outputs, 1)                  # (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)


class GoogLeNet(nn.Module):
    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        # (in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj): Table 1 of the paper.
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool1(self.conv1(x))                                      # (N, 64, 56, 56)
        x = self.maxpool2(self.conv3(self.conv2(x)))                          # (N, 192, 28, 28)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))              # (N, 480, 14, 14)
        x = self.inception4c(self.inception4b(self.inception4a(x)))
        x = self.maxpool4(self.inception4e(self.inception4d(x)))              # (N, 832, 7, 7)
        x = self.inception5b(self.inception5a(x))                             # (N, 1024, 7, 7)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))


def googlenet(*, num_classes: int = 1000) -> GoogLeNet:
    return GoogLeNet(num_classes=num_classes)


class GoogLeNetBVLC(nn.Module):
    """BVLC's Caffe GoogLeNet: conv biases and LRN instead of BatchNorm, true 5x5 branches."""

    # (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj): Table 1 of the paper.
    INCEPTION = {"3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
                 "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
                 "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
                 "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
                 "5b": (832, 384, 192, 384, 48, 128, 128)}

    def __init__(self, num_classes: int = 1000, dropout: float = 0.4):
        super().__init__()
        inception = partial(Inception, conv_block=ConvReLU, five_kernel=5)
        pool = partial(nn.MaxPool2d, kernel_size=3, stride=2, ceil_mode=True)
        lrn = partial(nn.LocalResponseNorm, size=5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv1 = ConvReLU(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = pool()
        self.norm1 = lrn()
        self.conv2 = ConvReLU(64, 64, kernel_size=1)
        self.conv3 = ConvReLU(64, 192, kernel_size=3, padding=1)
        self.norm2 = lrn()
        self.maxpool2 = pool()
        self.inception3a = inception(*self.INCEPTION["3a"])
        self.inception3b = inception(*self.INCEPTION["3b"])
        self.maxpool3 = pool()
        self.inception4a = inception(*self.INCEPTION["4a"])
        self.inception4b = inception(*self.INCEPTION["4b"])
        self.inception4c = inception(*self.INCEPTION["4c"])
        self.inception4d = inception(*self.INCEPTION["4d"])
        self.inception4e = inception(*self.INCEPTION["4e"])
        self.maxpool4 = pool()                        # 3x3 here; torchvision's is 2x2
        self.inception5a = inception(*self.INCEPTION["5a"])
        self.inception5b = inception(*self.INCEPTION["5b"])
        self.avgpool = nn.AvgPool2d(kernel_size=7, stride=1)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(self.maxpool1(self.conv1(x)))                          # (N, 64, 56, 56)
        x = self.maxpool2(self.norm2(self.conv3(self.conv2(x))))              # (N, 192, 28, 28)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))              # (N, 480, 14, 14)
        x = self.inception4c(self.inception4b(self.inception4a(x)))
        x = self.maxpool4(self.inception4e(self.inception4d(x)))              # (N, 832, 7, 7)
        x = self.inception5b(self.inception5a(x))                             # (N, 1024, 7, 7)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))


def googlenet_bvlc(*, num_classes: int = 1000) -> GoogLeNetBVLC:
    return GoogLeNetBVLC(num_classes=num_classes)

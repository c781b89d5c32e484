"""The standard ImageNet reference architectures by name, defined in the project.

Each builder returns a randomly initialised model with the layer structure, module
order, parameter count and MACs of the torchvision 0.2x model of the same name
(MobileNet v1, which torchvision lacks, follows Howard et al. 2017), so that hwsearch
can cost them without torchvision or downloaded weights. All take 1x3x224x224 input,
trace with torch.fx, and take one argument, `num_classes` (default 1000).

Six more are earlier definitions of the same families, the networks of Caffe-era
releases, which published latencies (Tencent/ncnn's benchmark) were measured on:
`resnet50_v1` (stride on the first 1x1 conv), `alexnet_bvlc` (two towers, LRN; meant
for 227x227), `googlenet_bvlc` (true 5x5, LRN), `squeezenet1_1_conv10_pad1`,
`mobilenet_v2_caffe` and `mobilenet_v3_large_arxiv_v1`. Their module docstrings say
what differs and cite the definition each matches.

    model = build_reference("mobilenet_v2")             # 3,504,872 parameters, 0.301 GMACs
    model = build_reference("resnet50", num_classes=10)
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from hwsearch.errors import ModelError
from hwsearch.workloads.models.alexnet import alexnet, alexnet_bvlc
from hwsearch.workloads.models.densenet import densenet121
from hwsearch.workloads.models.efficientnet import efficientnet_b0
from hwsearch.workloads.models.googlenet import googlenet, googlenet_bvlc
from hwsearch.workloads.models.mnasnet import mnasnet1_0
from hwsearch.workloads.models.mobilenet import (mobilenet_v1, mobilenet_v2, mobilenet_v2_caffe, mobilenet_v3_large,
                                       mobilenet_v3_large_arxiv_v1, mobilenet_v3_small)
from hwsearch.workloads.models.regnet import regnet_y_400mf
from hwsearch.workloads.models.resnet import resnet18, resnet50, resnet50_v1
from hwsearch.workloads.models.shufflenet import shufflenet_v2_x1_0
from hwsearch.workloads.models.squeezenet import squeezenet1_0, squeezenet1_1, squeezenet1_1_conv10_pad1
from hwsearch.workloads.models.vgg import vgg16
from hwsearch.workloads.models.vit import vit_tiny

REFERENCE_MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenet_v1": mobilenet_v1,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_large": mobilenet_v3_large,
    "mobilenet_v3_small": mobilenet_v3_small,
    "vgg16": vgg16,
    "squeezenet1_0": squeezenet1_0,
    "squeezenet1_1": squeezenet1_1,
    "googlenet": googlenet,
    "alexnet": alexnet,
    "densenet121": densenet121,
    "efficientnet_b0": efficientnet_b0,
    "shufflenet_v2_x1_0": shufflenet_v2_x1_0,
    "mnasnet1_0": mnasnet1_0,
    "regnet_y_400mf": regnet_y_400mf,
    "vit_tiny": vit_tiny,              # DeiT-Ti / timm vit_tiny_patch16_224 (torchvision has no tiny ViT)
    # earlier definitions of the same families, as Caffe-era releases (and Tencent/ncnn's benchmark) have them
    "resnet50_v1": resnet50_v1,
    "alexnet_bvlc": alexnet_bvlc,
    "googlenet_bvlc": googlenet_bvlc,
    "squeezenet1_1_conv10_pad1": squeezenet1_1_conv10_pad1,
    "mobilenet_v2_caffe": mobilenet_v2_caffe,
    "mobilenet_v3_large_arxiv_v1": mobilenet_v3_large_arxiv_v1,
}

__all__ = ["REFERENCE_MODELS", "build_reference"]


def build_reference(name: str, **kwargs) -> nn.Module:
    """Build a reference architecture by name, randomly initialised (kwargs: `num_classes`)."""
    if name not in REFERENCE_MODELS:
        raise ModelError(f"unknown reference model {name!r}: choose one of {', '.join(sorted(REFERENCE_MODELS))}")
    return REFERENCE_MODELS[name](**kwargs)

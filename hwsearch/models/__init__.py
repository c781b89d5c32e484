"""Architectures hwsearch builds by name, defined in the project (nothing is downloaded).

`resnet18` and `lenet5` are the digits models the default job trains (see `digits`).
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from hwsearch.errors import ModelError
from hwsearch.models.digits import LeNet5, ResNet18

BUILTIN_MODELS: dict[str, Callable[..., nn.Module]] = {"resnet18": ResNet18, "lenet5": LeNet5}

__all__ = ["BUILTIN_MODELS", "build_model"]


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a built-in architecture by name, randomly initialised."""
    if name not in BUILTIN_MODELS:
        raise ModelError(f"unknown model {name!r}: choose one of {', '.join(sorted(BUILTIN_MODELS))}")
    return BUILTIN_MODELS[name](**kwargs)

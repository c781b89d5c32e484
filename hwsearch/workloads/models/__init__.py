"""Architectures hwsearch builds by name, defined in the project (nothing is downloaded).

Three families, with names that cannot be confused:
- the digits models the default job trains (`resnet18_digits`, `lenet5_digits`; see `digits`);
- the Fashion-MNIST models accuracy claims are measured on (`resnet_fashion`, `mobilenet_fashion`,
  `lenet5_fashion`, `lenet300_100_fashion`; see `fashion`);
- the standard ImageNet reference architectures as torchvision defines them (`resnet50`,
  `mobilenet_v2`, ...; see `reference`), randomly initialised, for cost-only studies.

A user's own model is `package.module:function` or `path/to/file.py:function`, a
function that returns an `nn.Module` (`load_user_model`).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable

from torch import nn

from hwsearch.errors import ModelError
from hwsearch.workloads.models.digits import LeNet5, LeNet5Caffe, LeNet300100, ResNet18, VGGSmall
from hwsearch.workloads.models.fashion import MobileNetFashion, ResNetFashion
from hwsearch.workloads.models.reference import REFERENCE_MODELS

DIGITS_MODELS: dict[str, Callable[..., nn.Module]] = {"resnet18_digits": ResNet18, "lenet5_digits": LeNet5,
                                                      "lenet300_100_digits": LeNet300100,
                                                      "lenet5_caffe_digits": LeNet5Caffe, "vgg_small_digits": VGGSmall}
FASHION_MODELS: dict[str, Callable[..., nn.Module]] = {"resnet_fashion": ResNetFashion,
                                                       "mobilenet_fashion": MobileNetFashion,
                                                       "lenet5_fashion": LeNet5Caffe, "lenet300_100_fashion": LeNet300100}
# input side of each digits model: the 8x8 scans are resized to it (the papers' LeNets take 28x28)
DIGITS_INPUT = {"lenet300_100_digits": 28, "lenet5_caffe_digits": 28, "vgg_small_digits": 16}
# names the digits models had before the reference architectures took them (files written then)
LEGACY_NAMES = {"resnet18": "resnet18_digits", "lenet5": "lenet5_digits"}

__all__ = ["DIGITS_INPUT", "DIGITS_MODELS", "FASHION_MODELS", "LEGACY_NAMES", "REFERENCE_MODELS", "build_model", "load_user_model", "model_names",
           "resolve_model"]


def model_names() -> list[str]:
    return sorted(DIGITS_MODELS) + sorted(FASHION_MODELS) + sorted(REFERENCE_MODELS)


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a digits or Fashion-MNIST model or a reference architecture by name, randomly initialised."""
    builder = DIGITS_MODELS.get(name) or FASHION_MODELS.get(name) or REFERENCE_MODELS.get(name)
    if builder is None:
        raise ModelError(f"unknown model {name!r}: choose one of {', '.join(model_names())}, "
                         "or give package.module:function or path/to/file.py:function")
    return builder(**kwargs)


def resolve_model(spec: str) -> nn.Module:
    """A model by name (`resnet50`), or from a user's function (`pkg.nets:build`, `nets.py:build`)."""
    if ":" in spec:
        return load_user_model(spec)
    return build_model(spec)


def load_user_model(spec: str) -> nn.Module:
    """Call `module:function` (a dotted import path or a .py file) and check it returns an nn.Module."""
    where, _, function = spec.rpartition(":")
    if not where or not function.isidentifier():
        raise ModelError(f"model {spec!r} is not of the form package.module:function or path/to/file.py:function")
    module = _import(where, spec)
    builder = getattr(module, function, None)
    if not callable(builder):
        raise ModelError(f"{where} has no function {function!r}; define def {function}(): return my_model")
    try:
        model = builder()
    except Exception as exc:
        raise ModelError(f"{spec} raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                         "fix the function so that it returns the model") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"{spec} returned {type(model).__name__}, not a torch nn.Module; return the model itself")
    return model


def _import(where: str, spec: str):
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ModelError(f"file {where} does not exist (from {spec}); give a path relative to the current folder or absolute")
        name = f"hwsearch_user_{abs(hash(str(path.resolve())))}"
        folder = str(path.resolve().parent)
        if folder not in sys.path:      # as `python file.py` does: the file may import its neighbours
            sys.path.insert(0, folder)
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise ModelError(f"importing {where} failed ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        return module
    try:
        return importlib.import_module(where)
    except Exception as exc:
        raise ModelError(f"cannot import {where!r} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                         "check the module path and that its package is on PYTHONPATH") from None

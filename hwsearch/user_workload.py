"""A user's own trained model and data: `--model pkg.nets:build --data pkg.data:load`.

`build()` returns the trained `nn.Module`; `load()` returns `(train, val, test)`, each an
`(inputs, labels)` pair of tensors or a DataLoader yielding such pairs. `--eval pkg:fn`
(`fn(model, split) -> float`, higher is better, given the split as `load` returned it)
replaces top-1 accuracy; `--loss pkg:fn` (`fn(outputs, labels) -> tensor`) replaces
cross-entropy for fine-tuning. Everything is checked once, up front, so that a mistake in
the user's code ends in one line naming the function and the problem, before any work.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from hwsearch.data import Data, LoaderSplit, Split
from hwsearch.errors import DataError, ModelError
from hwsearch.models import load_user_model
from hwsearch.models import _import as import_module_of   # the same import rules as --model
from hwsearch.workload import Workload

SPLITS = ("train", "val", "test")


def builder_spec(spec: str) -> str:
    """The spec as the exported file records it: a .py file by absolute path, so it loads from anywhere."""
    where, _, function = spec.rpartition(":")
    return f"{Path(where).resolve()}:{function}" if where.endswith(".py") else spec


def load_user_workload(model_spec: str, data_spec: str, *, input_shape: tuple[int, ...] | None = None,
                       eval_spec: str | None = None, loss_spec: str | None = None) -> Workload:
    """The user's model and data, checked against each other and against `input_shape`."""
    model = load_user_model(model_spec).eval()
    metric = _function(eval_spec, "--eval", "def evaluate(model, split): return accuracy") if eval_spec else None
    loss = _function(loss_spec, "--loss", "def loss(outputs, labels): return tensor") if loss_spec else None
    splits = _splits(data_spec)
    example = splits[0].take(1)
    if input_shape is not None and tuple(example.shape[1:]) != tuple(input_shape):
        raise DataError(f"--data {data_spec} gives inputs of shape {'x'.join(map(str, example.shape[1:]))} per example "
                        f"but --input says {'x'.join(map(str, input_shape))}; fix one of them")
    _check_model_runs(model, model_spec, splits[0], classification=metric is None or loss is None)
    data = Data(*splits, metric=metric, loss=loss, max_shift=0,
                metric_name=eval_spec.rpartition(":")[2] if eval_spec else "top-1 accuracy")
    try:
        baseline = data.evaluate(model, data.test)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"--eval {eval_spec} raised {type(exc).__name__}: {_first_line(exc)}") from None
    if baseline != baseline:
        raise DataError(f"--eval {eval_spec} returned NaN on the original model; return one number, higher is better")
    return Workload(model, {"builder": builder_spec(model_spec)}, data, baseline, trained_now=False,
                    example=example)


def _function(spec: str, flag: str, shape: str):
    where, _, name = spec.rpartition(":")
    if not where or not name.isidentifier():
        raise DataError(f"{flag} {spec!r} is not of the form package.module:function or path/to/file.py:function")
    try:
        module = import_module_of(where, spec)
    except ModelError as exc:
        raise DataError(f"{flag}: {exc}") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise DataError(f"{where} has no function {name!r} (from {flag} {spec}); define {shape}")
    return function


def _splits(spec: str) -> list[Split | LoaderSplit]:
    load = _function(spec, "--data", "def load(): return train, val, test")
    try:
        returned = load()
    except Exception as exc:
        raise DataError(f"--data {spec} raised {type(exc).__name__}: {_first_line(exc)}; fix the function") from None
    if not (isinstance(returned, (tuple, list)) and len(returned) == 3):
        raise DataError(f"--data {spec} returned {_describe(returned)}; return (train, val, test), each an "
                        "(inputs, labels) pair of tensors or a DataLoader")
    return [_split(item, name, spec) for item, name in zip(returned, SPLITS)]


def _split(item, name: str, spec: str) -> Split | LoaderSplit:
    if isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, torch.Tensor) for t in item):
        x, y = item
        if len(x) != len(y) or len(x) == 0:
            raise DataError(f"--data {spec}: the {name} split has {len(x)} inputs and {len(y)} labels; "
                            "give as many labels as inputs, at least one")
        return Split(x.float() if not x.is_floating_point() else x, y)
    if isinstance(item, DataLoader) or (hasattr(item, "__iter__") and not isinstance(item, (tuple, list, torch.Tensor))):
        split = LoaderSplit(item, name)
        try:
            first = next(iter(split.batches()), None)
        except DataError as exc:
            raise DataError(f"--data {spec}: {exc}") from None
        except Exception as exc:
            raise DataError(f"--data {spec}: iterating the {name} DataLoader raised {type(exc).__name__}: "
                            f"{_first_line(exc)}") from None
        if first is None:
            raise DataError(f"--data {spec}: the {name} DataLoader is empty")
        return split
    raise DataError(f"--data {spec}: the {name} split is {_describe(item)}; give an (inputs, labels) pair of "
                    "tensors or a DataLoader yielding such pairs")


def _check_model_runs(model, spec: str, train: Split | LoaderSplit, *, classification: bool) -> None:
    x, y = next(iter(train.batches(8)))
    try:
        with torch.no_grad():
            out = model(x[:8])
    except Exception as exc:
        raise ModelError(f"{spec} does not run on the training inputs of shape {tuple(x.shape[1:])}: "
                         f"{type(exc).__name__}: {_first_line(exc)}") from None
    if classification and not (isinstance(out, torch.Tensor) and out.dim() == 2 and y.dim() == 1
                               and not y.is_floating_point()):
        raise DataError(f"{spec} outputs {_describe(out)} for labels {_describe(y)}: top-1 accuracy and cross-entropy "
                        "need (N, classes) scores and (N,) class indices; for another task pass --eval and --loss")


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"an object of type {type(value).__name__}"


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else "(no message)"

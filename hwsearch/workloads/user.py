"""Source of a user's own trained model and data: named on the command line, or passed as objects.

    hwsearch --model pkg.nets:build --data pkg.data:load [--input 3x32x32] [--eval pkg:fn] [--loss pkg:fn]
    hwsearch.search(model, (train, val, test), eval=fn, loss=fn, ...)

`build()` returns the trained `nn.Module`; `load()` returns `(train, val, test)`, each an
`(inputs, labels)` pair of tensors or a DataLoader yielding such pairs. `--eval pkg:fn`
(`fn(model, split) -> float`, higher is better, given the split as `load` returned it)
replaces top-1 accuracy; `--loss pkg:fn` (`fn(outputs, labels) -> tensor`) replaces
cross-entropy for fine-tuning. Everything is checked once, up front, so that a mistake in
the user's code ends in one line naming the function (or the argument) and the problem,
before any work.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from hwsearch.errors import DataError, ModelError
from hwsearch.workloads.data import Data, LoaderSplit, Split
from hwsearch.workloads.models import load_user_model
from hwsearch.workloads.models import _import as import_module_of   # the same import rules as --model
from hwsearch.workloads.workload import Workload

SPLITS = ("train", "val", "test")
SPLITS_HINT = "(train, val, test), each an (inputs, labels) pair of tensors or a DataLoader"


def builder_spec(spec: str) -> str:
    """The spec as the exported file records it: a .py file by absolute path, so it loads from anywhere."""
    where, _, function = spec.rpartition(":")
    return f"{Path(where).resolve()}:{function}" if where.endswith(".py") else spec


def load_user_workload(model_spec: str, data_spec: str, *, input_shape: tuple[int, ...] | None = None,
                       eval_spec: str | None = None, loss_spec: str | None = None) -> Workload:
    """The model and data that functions named on the command line return, checked against each other."""
    model = load_user_model(model_spec).eval()
    metric = _function(eval_spec, "--eval", "def evaluate(model, split): return accuracy") if eval_spec else None
    loss = _function(loss_spec, "--loss", "def loss(outputs, labels): return tensor") if loss_spec else None
    load = _function(data_spec, "--data", "def load(): return train, val, test")
    try:
        returned = load()
    except Exception as exc:
        raise DataError(f"--data {data_spec} raised {type(exc).__name__}: {_first_line(exc)}; fix the function") from None
    splits = _splits(returned, f"--data {data_spec}", f"--data {data_spec} returned", "return")
    return _checked(model, splits, names=Names(model_spec, f"--data {data_spec}", "--input", f"--eval {eval_spec}",
                                               "pass --eval and --loss"),
                    metric=metric, loss=loss, metric_name=eval_spec.rpartition(":")[2] if eval_spec else None,
                    input_shape=input_shape, spec={"builder": builder_spec(model_spec)},
                    architecture=lambda: load_user_model(model_spec))


def user_model_on(model_spec: str, data: Data, *, data_label: str, input_shape: tuple[int, ...] | None = None,
                  eval_spec: str | None = None, loss_spec: str | None = None) -> Workload:
    """The user's model (named on the command line) on data hwsearch loads: a built-in data set or an image
    folder, with that data's augmentation for fine-tuning."""
    model = load_user_model(model_spec).eval()
    metric = _function(eval_spec, "--eval", "def evaluate(model, split): return accuracy") if eval_spec else None
    loss = _function(loss_spec, "--loss", "def loss(outputs, labels): return tensor") if loss_spec else None
    return _checked(model, [data.train, data.val, data.test],
                    names=Names(model_spec, f"--data {data_label}", "--input", f"--eval {eval_spec}",
                                "pass --eval and --loss"),
                    metric=metric, loss=loss, metric_name=eval_spec.rpartition(":")[2] if eval_spec else None,
                    input_shape=input_shape, spec={"builder": builder_spec(model_spec)},
                    architecture=lambda: load_user_model(model_spec), base=data)


def user_workload(model: nn.Module, data, *, input_shape: tuple[int, ...] | None = None,
                  metric: Callable | None = None, loss: Callable | None = None) -> Workload:
    """A model and data given as objects (the Python API), checked as the command line's are. `data` is
    `(train, val, test)`, or a `Data` hwsearch loaded (a built-in data set, an image folder).

    The file a run exports records the model's class; loading it back takes the architecture
    (`hwsearch.load(path, model=...)`), since no function can rebuild it.
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"model is {_describe(model)}, not a torch nn.Module; pass the trained model itself")
    for value, name in ((metric, "eval"), (loss, "loss")):
        if value is not None and not callable(value):
            raise DataError(f"{name} is {_describe(value)}; pass a function")
    base = data if isinstance(data, Data) else None
    splits = [base.train, base.val, base.test] if base else _splits(data, "data", "data is", "pass")
    pristine = copy.deepcopy(model).eval()          # fine-tuning and the classifier replacement leave it as given
    return _checked(model.eval(), splits, names=Names(type(model).__name__, "data", "input_shape", "eval",
                                                         "pass eval= and loss="),
                    metric=metric, loss=loss, metric_name=getattr(metric, "__name__", "metric") if metric else None,
                    input_shape=input_shape, spec={"class": f"{type(model).__module__}.{type(model).__qualname__}"},
                    architecture=lambda: copy.deepcopy(pristine), base=base)


class Names:
    """How messages name the model, the data, the input shape and the metric: flags or arguments."""

    def __init__(self, model: str, data: str, input: str, eval: str, other_task: str):
        self.model, self.data, self.input, self.eval, self.other_task = model, data, input, eval, other_task


def _checked(model: nn.Module, splits: list, *, names: Names, metric, loss, metric_name: str | None,
             input_shape, spec: dict, architecture, base: Data | None = None) -> Workload:
    example = splits[0].take(1)
    if input_shape is not None and tuple(example.shape[1:]) != tuple(input_shape):
        raise DataError(f"{names.data} gives inputs of shape {'x'.join(map(str, example.shape[1:]))} per example "
                        f"but {names.input} says {'x'.join(map(str, input_shape))}; fix one of them")
    _check_model_runs(model, names, splits[0], classification=metric is None or loss is None)
    data = Data(*splits, metric=metric, loss=loss, max_shift=base.max_shift if base else 0,
                metric_name=metric_name or "top-1 accuracy", flip=base.flip if base else False,
                source=base.source if base else None)
    try:
        baseline = data.evaluate(model, data.test)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{names.eval} raised {type(exc).__name__}: {_first_line(exc)}") from None
    if baseline != baseline:
        raise DataError(f"{names.eval} returned NaN on the original model; return one number, higher is better")
    return Workload(model, spec, data, baseline, trained_now=False, example=example, architecture=architecture)


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


def _splits(returned, where: str, returned_text: str, verb: str) -> list[Split | LoaderSplit]:
    """The three splits of what the user's data function returned (or the data passed in)."""
    if not (isinstance(returned, (tuple, list)) and len(returned) == 3):
        raise DataError(f"{returned_text} {_describe(returned)}; {verb} {SPLITS_HINT}")
    return [_split(item, name, where) for item, name in zip(returned, SPLITS)]


def _split(item, name: str, where: str) -> Split | LoaderSplit:
    if isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, torch.Tensor) for t in item):
        x, y = item
        if len(x) != len(y) or len(x) == 0:
            raise DataError(f"{where}: the {name} split has {len(x)} inputs and {len(y)} labels; "
                            "give as many labels as inputs, at least one")
        return Split(x.float() if not x.is_floating_point() else x, y)
    if isinstance(item, DataLoader) or (hasattr(item, "__iter__") and not isinstance(item, (tuple, list, torch.Tensor))):
        split = LoaderSplit(item, name)
        try:
            first = next(iter(split.batches()), None)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        except Exception as exc:
            raise DataError(f"{where}: iterating the {name} DataLoader raised {type(exc).__name__}: "
                            f"{_first_line(exc)}") from None
        if first is None:
            raise DataError(f"{where}: the {name} DataLoader is empty")
        return split
    raise DataError(f"{where}: the {name} split is {_describe(item)}; give an (inputs, labels) pair of "
                    "tensors or a DataLoader yielding such pairs")


def _check_model_runs(model, names: Names, train: Split | LoaderSplit, *, classification: bool) -> None:
    name = names.model
    x, y = next(iter(train.batches(8)))
    try:
        with torch.no_grad():
            out = model(x[:8])
    except Exception as exc:
        raise ModelError(f"{name} does not run on the training inputs of shape {tuple(x.shape[1:])}: "
                         f"{type(exc).__name__}: {_first_line(exc)}") from None
    if classification and not (isinstance(out, torch.Tensor) and out.dim() == 2 and y.dim() == 1
                               and not y.is_floating_point()):
        raise DataError(f"{name} outputs {_describe(out)} for labels {_describe(y)}: top-1 accuracy and cross-entropy "
                        f"need (N, classes) scores and (N,) class indices; for another task {names.other_task}")


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"an object of type {type(value).__name__}"


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else "(no message)"

"""Which source a run's model and data come from, picked from its settings.

    --model resnet18_digits                           builtin: trained on its data set on first use, cached
    --model resnet_fashion [--data fashion-mnist]     builtin, on Fashion-MNIST
    --model pkg.nets:build --data pkg.data:load       user: the user's functions (--input, --eval, --loss)
    --model pkg.nets:build --data fashion-mnist       user's model on a built-in data set
    --model pkg.nets:build --data imagefolder:PATH --input 3x64x64     user's model on a folder of images

The Python API passes objects instead (`user.user_workload`). A new source is a module with a
function returning a `Data` or a `Workload`, and a line here.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from hwsearch.config import IMAGE_FOLDER, RunConfig, data_kind, parse_input
from hwsearch.errors import DataError
from hwsearch.workloads.builtin import RECIPES, dataset_of, load_data, load_workload
from hwsearch.workloads.data import Data
from hwsearch.workloads.imagefolder import load_image_folder
from hwsearch.workloads.user import load_user_workload, user_model_on
from hwsearch.workloads.workload import Workload


def open_workload(config: RunConfig, progress=None, warn: Callable[[str], None] | None = None,
                  device: str = "cpu") -> Workload:
    """The built-in model trained on its data (cached), or the user's own model on its data, checked; its data
    set to train and evaluate on `device`."""
    workload = _open(config, progress, warn, device)
    workload.data = replace(workload.data, device=device)
    return workload


def _open(config: RunConfig, progress, warn, device: str) -> Workload:
    kind = data_kind(config.data)
    if ":" not in config.model:
        if kind == "builtin" and config.model in RECIPES and config.data != dataset_of(config.model):
            made_for = sorted(name for name in RECIPES if dataset_of(name) == config.data)
            raise DataError(f"--model {config.model} is trained on {dataset_of(config.model)}, not on --data "
                            f"{config.data}: give a model made for it ({', '.join(made_for)}) or your own")
        return load_workload(config.model, cache_dir=config.cache_dir, progress=progress, warn=warn,
                             data_dir=config.data_dir, device=device)
    shape = parse_input(config.input) if config.input else None
    if kind == "function":
        return load_user_workload(config.model, config.data, input_shape=shape, eval_spec=config.eval,
                                  loss_spec=config.loss)
    return user_model_on(config.model, open_data(config, progress), data_label=config.data, input_shape=shape,
                         eval_spec=config.eval, loss_spec=config.loss)


def open_data(config: RunConfig, progress=None) -> Data:
    """A built-in data set by name, or a folder of images, for a user's model."""
    if data_kind(config.data) == "imagefolder":
        return load_image_folder(config.data.removeprefix(IMAGE_FOLDER), parse_input(config.input))
    return load_data(config.data, data_dir=config.data_dir, progress=progress)

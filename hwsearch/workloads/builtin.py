"""Source of the default workload: a model of the project's, trained on a built-in data set on
first use, then cached.

The cache file's name carries a hash of everything that shapes the weights (architecture,
recipe, data split, torch version), so changing the recipe retrains; the entry is checked
(`cache.load_checked`) before it is used.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import torch

from hwsearch.errors import ModelError
from hwsearch.workloads.cache import default_cache_dir, load_checked, save_checked
from hwsearch.workloads.data import Data
from hwsearch.workloads.digits import load_digits_split
from hwsearch.workloads.fashion_mnist import load_fashion_mnist
from hwsearch.workloads.models import DIGITS_INPUT, build_model
from hwsearch.workloads.training import TrainConfig, accuracy, train
from hwsearch.workloads.workload import Workload

RECIPES = {
    # measured here (2 cores): 128-143 s, test accuracy 98.9-99.6% over seeds 0-2;
    # peak lr 0.1 reached only 97.0-98.5%
    "resnet18_digits": TrainConfig(epochs=12, max_lr=0.05),
    "lenet5_digits": TrainConfig(epochs=30, max_lr=0.05, weight_decay=1e-4),
    # the papers' networks on digits resized to their input: a shift of 1 pixel at 8x8 is 3 at 28x28
    "lenet300_100_digits": TrainConfig(epochs=30, max_lr=0.05, weight_decay=1e-4, max_shift=3),
    "lenet5_caffe_digits": TrainConfig(epochs=30, max_lr=0.05, weight_decay=1e-4, max_shift=3),
    "vgg_small_digits": TrainConfig(epochs=30, max_lr=0.05, max_shift=2),
    # Fashion-MNIST (55,000 training images), shifts of up to 2 pixels and mirror images; measured here
    # (2 cores): see docs/measured.md
    "resnet_fashion": TrainConfig(epochs=12, batch_size=128, max_lr=0.1, max_shift=2, channels_last=True),
    "mobilenet_fashion": TrainConfig(epochs=12, batch_size=128, max_lr=0.1, weight_decay=1e-4, max_shift=2,
                                     channels_last=True),
    "lenet5_fashion": TrainConfig(epochs=20, batch_size=128, max_lr=0.05, weight_decay=1e-4, max_shift=2,
                                  channels_last=True),
    "lenet300_100_fashion": TrainConfig(epochs=20, batch_size=128, max_lr=0.05, weight_decay=1e-4, max_shift=0),
}
# the data set each built-in model is trained on (the rest: digits)
DATASET = {name: "fashion-mnist" for name in RECIPES if name.endswith("_fashion")}
CACHE_VERSION = 1


def dataset_of(model_name: str) -> str:
    """The data set a built-in model is trained on: "digits" or "fashion-mnist"."""
    return DATASET.get(model_name, "digits")


def load_data(dataset: str, *, model_name: str | None = None, seed: int = 0, data_dir: str | None = None,
              progress=None) -> Data:
    """A built-in data set, split with `seed` (digits resized to the input of `model_name`)."""
    if dataset == "fashion-mnist":
        return load_fashion_mnist(data_dir=data_dir, seed=seed, progress=progress)
    return load_digits_split(seed=seed, size=DIGITS_INPUT.get(model_name, 8))


def load_workload(model_name: str, *, cache_dir: Path | None = None, data_seed: int = 0, progress=None,
                  warn: Callable[[str], None] | None = None, data_dir: str | None = None,
                  device: str = "cpu") -> Workload:
    """The trained built-in model and its data split; trains and caches it on first use.

    A cache entry is trusted only if it holds the key it was trained for and its weights
    hash to the digest stored beside them; anything else (truncated, bit-flipped, written
    for another recipe) is reported through `warn` and retrained. The test accuracy is
    measured on the loaded weights, never read from the file.
    """
    if model_name not in RECIPES:
        raise ModelError(f"unknown model {model_name!r}: choose one of {', '.join(sorted(RECIPES))}")
    recipe, dataset = RECIPES[model_name], dataset_of(model_name)
    data = replace(load_data(dataset, model_name=model_name, seed=data_seed, data_dir=data_dir, progress=progress),
                   device=device)
    spec = {"name": model_name, "kwargs": {}}
    # fields added to TrainConfig later count only away from their defaults: older cached models stay valid
    recipe_key = {k: v for k, v in asdict(recipe).items()
                  if k not in ("distill", "temperature", "schedule") and not (k in ("channels_last", "max_steps")
                                                                              and not v)}
    fields = {"v": CACHE_VERSION, "spec": spec, "recipe": recipe_key, "data_seed": data_seed,
              "torch": torch.__version__.split("+")[0]}
    if dataset != "digits":           # digits keys stay as they were: their cached models stay valid
        fields["data"] = {**{k: v for k, v in data.source.items() if k not in ("folder", "mean", "std")},
                          "max_shift": data.max_shift, "flip": data.flip}
    key = json.dumps(fields, sort_keys=True)
    path = Path(cache_dir or default_cache_dir()) / f"{model_name}-{dataset}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
    torch.manual_seed(recipe.seed)                       # the initial weights are part of the recipe
    model = build_model(model_name, **spec["kwargs"])
    if path.is_file():
        problem = load_checked(model, path, key)
        if problem is None:
            model.eval()
            return Workload(model, spec, data, accuracy(model, data.test), trained_now=False, example=data.train.take(1),
                            architecture=lambda: build_model(model_name, **spec["kwargs"]))
        if warn:
            warn(f"cached model {path} {problem}: retraining it")
        torch.manual_seed(recipe.seed)
        model = build_model(model_name, **spec["kwargs"])
    # digits trains on its split alone (its recipe's shift); the other data sets bring their augmentation
    train(model, data.train if dataset == "digits" else data, recipe, progress,
          description=f"training {model_name} on {dataset} (first use)")
    test_accuracy = accuracy(model, data.test)
    save_checked(path, key, model.state_dict(), test_accuracy=test_accuracy)
    return Workload(model.eval(), spec, data, test_accuracy, trained_now=True, example=data.train.take(1),
                    architecture=lambda: build_model(model_name, **spec["kwargs"]))

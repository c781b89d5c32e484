"""The default workload: a built-in model trained on digits on first use, then cached.

The cache lives outside git (`~/.cache/hwsearch`, or `$HWSEARCH_CACHE`); its file name
carries a hash of everything that shapes the weights, so changing the recipe retrains.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from hwsearch.data import Data, load_digits_split
from hwsearch.errors import ModelError
from hwsearch.models import DIGITS_INPUT, build_model
from hwsearch.training import TrainConfig, accuracy, train

RECIPES = {
    # measured here (2 cores): 128-143 s, test accuracy 98.9-99.6% over seeds 0-2;
    # peak lr 0.1 reached only 97.0-98.5%
    "resnet18_digits": TrainConfig(epochs=12, max_lr=0.05),
    "lenet5_digits": TrainConfig(epochs=30, max_lr=0.05, weight_decay=1e-4),
    # the papers' networks on digits resized to their input: a shift of 1 pixel at 8x8 is 3 at 28x28
    "lenet300_100_digits": TrainConfig(epochs=30, max_lr=0.05, weight_decay=1e-4, max_shift=3),
    "lenet5_caffe_digits": TrainConfig(epochs=30, max_lr=0.05, weight_decay=1e-4, max_shift=3),
    "vgg_small_digits": TrainConfig(epochs=30, max_lr=0.05, max_shift=2),
}
CACHE_VERSION = 1


@dataclass
class Workload:
    model: nn.Module
    model_spec: dict          # how to rebuild the architecture: {"name": ..., "kwargs": {...}} or {"builder": "pkg:fn"}
    data: Data
    test_accuracy: float      # the data's metric on the test split (top-1 accuracy unless --eval says otherwise)
    trained_now: bool         # False when the weights came from the cache (or from the user)
    example: torch.Tensor     # one input, batch of 1: what the layer graph is traced with


def default_cache_dir() -> Path:
    return Path(os.environ.get("HWSEARCH_CACHE", Path.home() / ".cache" / "hwsearch"))


def load_workload(model_name: str, *, cache_dir: Path | None = None, data_seed: int = 0, progress=None) -> Workload:
    """The trained built-in model and its data split; trains and caches it on first use."""
    if model_name not in RECIPES:
        raise ModelError(f"unknown model {model_name!r}: choose one of {', '.join(sorted(RECIPES))}")
    recipe = RECIPES[model_name]
    data = load_digits_split(seed=data_seed, size=DIGITS_INPUT.get(model_name, 8))
    spec = {"name": model_name, "kwargs": {}}
    recipe_key = {k: v for k, v in asdict(recipe).items() if k not in ("distill", "temperature", "schedule")}  # new fields at their defaults
    key = json.dumps({"v": CACHE_VERSION, "spec": spec, "recipe": recipe_key, "data_seed": data_seed,
                      "torch": torch.__version__.split("+")[0]}, sort_keys=True)
    path = Path(cache_dir or default_cache_dir()) / f"{model_name}-digits-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
    torch.manual_seed(recipe.seed)                       # the initial weights are part of the recipe
    model = build_model(model_name, **spec["kwargs"])
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(saved["state_dict"])
        except Exception as exc:
            raise ModelError(f"cached model {path} cannot be read ({type(exc).__name__}); "
                             f"delete it (rm {path}) and run again to retrain") from None
        return Workload(model.eval(), spec, data, saved["test_accuracy"], trained_now=False, example=data.train.take(1))
    train(model, data.train, recipe, progress, description=f"training {model_name} on digits (first use)")
    test_accuracy = accuracy(model, data.test)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"state_dict": model.state_dict(), "test_accuracy": test_accuracy}, tmp)
    os.replace(tmp, path)
    return Workload(model.eval(), spec, data, test_accuracy, trained_now=True, example=data.train.take(1))

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
from typing import Callable

import torch
from torch import nn

from hwsearch.atomic_write import atomic_write
from hwsearch.data import Data, load_digits_split
from hwsearch.errors import HwsearchError, ModelError
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


def usable_cache_dir(cache_dir: str | Path | None) -> Path:
    """The cache folder (`--cache-dir`, else $HWSEARCH_CACHE, else ~/.cache/hwsearch), created and writable.

    Checked before any work, so that a cache path that is a file fails now, not after training.
    """
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name = "--cache-dir" if cache_dir is not None else ("$HWSEARCH_CACHE" if "HWSEARCH_CACHE" in os.environ
                                                       else "the default cache")
    if path.exists() and not path.is_dir():
        raise HwsearchError(f"{name} {path} is a file, not a folder; give a folder for trained models and proxy tables")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HwsearchError(f"{name} {path} cannot be created ({exc.strerror}); give a folder you can write") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise HwsearchError(f"{name} {path} is not writable; give a folder you can write")
    return path


def load_workload(model_name: str, *, cache_dir: Path | None = None, data_seed: int = 0, progress=None,
                  warn: Callable[[str], None] | None = None) -> Workload:
    """The trained built-in model and its data split; trains and caches it on first use.

    A cache entry is trusted only if it holds the key it was trained for and its weights
    hash to the digest stored beside them; anything else (truncated, bit-flipped, written
    for another recipe) is reported through `warn` and retrained. The test accuracy is
    measured on the loaded weights, never read from the file.
    """
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
        problem = _load_checked(model, path, key)
        if problem is None:
            model.eval()
            return Workload(model, spec, data, accuracy(model, data.test), trained_now=False, example=data.train.take(1))
        if warn:
            warn(f"cached model {path} {problem}: retraining it")
        torch.manual_seed(recipe.seed)
        model = build_model(model_name, **spec["kwargs"])
    train(model, data.train, recipe, progress, description=f"training {model_name} on digits (first use)")
    test_accuracy = accuracy(model, data.test)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    with atomic_write(path, "wb") as f:
        torch.save({"state_dict": state, "test_accuracy": test_accuracy, "key": key,
                    "sha256": weights_digest(key, state)}, f)
    return Workload(model.eval(), spec, data, test_accuracy, trained_now=True, example=data.train.take(1))


def weights_digest(key: str, state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the cache key and every tensor (name, dtype, shape, bytes) of a state dict."""
    digest = hashlib.sha256(key.encode())
    for name, tensor in state.items():
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def _load_checked(model: nn.Module, path: Path, key: str) -> str | None:
    """Load a cache entry into `model`; None if it is whole and for `key`, else what is wrong with it."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        return f"cannot be read ({type(exc).__name__})"
    if not isinstance(saved, dict) or "sha256" not in saved or "state_dict" not in saved:
        return "has no checksum (written by an older hwsearch)"
    if saved.get("key") != key:
        return "was trained for another recipe"
    if weights_digest(key, saved["state_dict"]) != saved["sha256"]:
        return "is corrupt (checksum mismatch)"
    try:
        model.load_state_dict(saved["state_dict"])
    except RuntimeError:
        return "does not fit the model"
    return None

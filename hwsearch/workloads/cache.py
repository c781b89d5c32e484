"""The cache folder (trained models, proxy tables), and trained weights stored with a checksum.

It lives outside git: `--cache-dir`, else `$HWSEARCH_CACHE`, else `~/.cache/hwsearch`.
An entry of trained weights is trusted only if it holds the key it was trained for and its
tensors hash to the digest stored beside them (`load_checked`); anything else is reported
and retrained, never silently used.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from hwsearch.atomic_write import atomic_write
from hwsearch.errors import HwsearchError


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


def weights_digest(key: str, state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the cache key and every tensor (name, dtype, shape, bytes) of a state dict."""
    digest = hashlib.sha256(key.encode())
    for name, tensor in state.items():
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def load_checked(model: nn.Module, path: Path, key: str) -> str | None:
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


def save_checked(path: Path, key: str, state: dict[str, torch.Tensor], **extra) -> None:
    """Write a state dict with its key and digest, atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        torch.save({"state_dict": state, **extra, "key": key, "sha256": weights_digest(key, state)}, f)

"""Accuracy proxy: how well each compressed layer reproduces the original layer's outputs.

For every (layer, option) the compressed layer is run on that layer's own calibration
inputs (captured from the original model) and compared with the original outputs:

    error = ||y - y_hat||_F / ||y||_F            y: (N, C_out, H, W) or (N, out)

Relative, so that layers of very different scale can be summed. The same pass records the
exact bytes each fitted option takes in the file (sparse positions and codebook indices
make it data-dependent), which the cost table and the search read as the size. Computed
once before the search (the search only reads this table) and cached on disk under a key
made of everything it depends on: the weights, the calibration images, the option grid
and the fitting code.

The errors are combined into a plan's score with the layers' sensitivities
(`hwsearch.proxy.divergence`): `sum_l s_l * e_l^2` by default, or their plain sum.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from hwsearch.atomic_write import atomic_write
from hwsearch.compression import Fitter, Option, capture_inputs, compress, layer_nbytes
from hwsearch.graph import Layer
from hwsearch.proxy.divergence import fisher_sensitivity, layer_sensitivity
from hwsearch.proxy.streaming import (CAPTURE_LIMIT, FIT_IMAGES, POSITIONS, SENSITIVITY_IMAGES, capture_bytes,
                                      streamed_rows)
from hwsearch.workloads import on_device

PROXY_VERSION = 2   # bump when the error definition changes, so old cache entries are not reused
COMBINE = ("weighted", "sum")
# the fits decide the masks, hence the bytes: a cached table is reused only by the code that computed it
_FIT_SOURCES = sorted((Path(__file__).resolve().parent.parent / "compression").glob("*.py"))


@dataclass(frozen=True)
class ProxyTable:
    """errors[layer name][i] is the relative output error of options[layer name][i];
    sizes[layer name][i] the exact bytes that option takes in the file (empty: not measured).

    `scores` is what the search adds up over layers: s_l * e^2 with the layers' sensitivities
    (the predicted output divergence, in nats for a classifier), or the errors themselves
    when `sensitivity` is None (the plain sum). Search units that stand for several layers
    (`hwsearch.study.units`) carry their summed scores in `unit_scores`.
    """
    options: dict[str, list[Option]]
    errors: dict[str, np.ndarray]
    sizes: dict[str, np.ndarray] = field(default_factory=dict)
    sensitivity: dict[str, float] | None = None
    unit_scores: dict[str, np.ndarray] | None = None

    @cached_property
    def scores(self) -> dict[str, np.ndarray]:
        if self.unit_scores is not None:
            return self.unit_scores
        if self.sensitivity is None:
            return self.errors
        return {name: self.sensitivity[name] * np.square(errors) for name, errors in self.errors.items()}

    def combined(self, combine: str) -> "ProxyTable":
        """This table scored as `combine` says: "weighted" (needs sensitivities) or "sum"."""
        if combine not in COMBINE:
            raise ValueError(f"unknown proxy {combine!r}: {' or '.join(COMBINE)}")
        if combine == "sum":
            return replace(self, sensitivity=None, unit_scores=None)
        if self.sensitivity is None and self.unit_scores is None:
            raise ValueError("a weighted proxy needs the layers' sensitivities")
        return self


def streams(model: nn.Module, layers: list[Layer], calibration: torch.Tensor) -> bool:
    """Whether the table of `model` is built in bounded memory (`streaming`): its layers' inputs over
    the calibration set would take more than `CAPTURE_LIMIT` bytes."""
    return capture_bytes(model, [layer.name for layer in layers], calibration) > CAPTURE_LIMIT


@torch.no_grad()
def build_proxy_table(model: nn.Module, layers: list[Layer], options: dict[str, list[Option]],
                      calibration: torch.Tensor, progress=None, device: str = "cpu",
                      streaming: bool | None = None) -> ProxyTable:
    """Relative feature-map reconstruction error and exact bytes of every option of every layer,
    and each layer's sensitivity.

    On a GPU (`device`) the layers' inputs are captured and every compressed layer runs there;
    the fits and the byte counts (the file's encoder) stay on the CPU. `streaming` (by default,
    when `streams` says so) keeps about one layer's inputs at a time and measures the errors at
    sampled positions (`hwsearch.proxy.streaming`).
    """
    if streaming is None:
        streaming = streams(model, layers, calibration)
    if streaming:
        return _streamed_table(model, layers, options, calibration, progress, device)
    with on_device(model, device):
        inputs = capture_inputs(model, [layer.name for layer in layers], calibration.to(device))
    task = progress.add_task("proxy table", total=sum(len(options[l.name]) for l in layers)) if progress else None
    errors, sizes = {}, {}
    for layer in layers:
        module = model.get_submodule(layer.name)
        x = inputs.pop(layer.name)                        # each layer's inputs are let go once it is done
        with on_device(module, device):
            y = module(x)
        norm = y.norm().clamp_min(1e-12)
        fitter = Fitter(module, x.cpu())    # decompositions shared by the layer's options
        row, size = [], []
        for option in options[layer.name]:
            compressed = compress(module, option, fitter=fitter)
            size.append(layer_nbytes(compressed))
            with on_device(compressed, device):
                row.append(((y - compressed(x)).norm() / norm).item())
            if progress:
                progress.advance(task)
        errors[layer.name], sizes[layer.name] = np.asarray(row), np.asarray(size, dtype=np.int64)
    if progress:
        progress.remove_task(task)
    return ProxyTable(options, errors, sizes, layer_sensitivity(model, layers, calibration, progress=progress,
                                                                device=device))


def _streamed_table(model, layers, options, calibration, progress, device) -> ProxyTable:
    task = progress.add_task("proxy table (streamed)", total=sum(len(options[l.name]) for l in layers)) if progress else None
    errors, sizes = {}, {}
    was_training = model.training
    try:
        with on_device(model.eval(), device):
            for name, row, size in streamed_rows(model, layers, options, calibration, progress, task, device):
                errors[name], sizes[name] = row, size
        sensitivity = fisher_sensitivity(model, layers, calibration[:SENSITIVITY_IMAGES], device=device)
    finally:
        model.train(was_training)
    if progress:
        progress.remove_task(task)
    return ProxyTable(options, errors, sizes, sensitivity)


_SENSITIVITY = "__sensitivity__"    # the cache file's entry for the layers' sensitivities, in layer order
_DIGEST = "__sha256__"              # the cache file's entry for the digest of its key and every array


def cached_proxy_table(model: nn.Module, layers: list[Layer], options: dict[str, list[Option]],
                       calibration: torch.Tensor, cache_dir: Path, progress=None,
                       warn: Callable[[str], None] | None = None, device: str = "cpu") -> tuple[ProxyTable, bool]:
    """`build_proxy_table` through a disk cache; returns the table and whether it came from the cache.

    The file name carries a hash of what the table is computed from (weights, calibration
    images, option grid); inside, a digest of that key and of every array. An entry that
    cannot be read, or whose digest does not match (truncated, bit-flipped, or another
    table under a colliding name), is reported through `warn`, rebuilt and overwritten:
    it holds only derived numbers.
    """
    key = hashlib.sha256(f"proxy-v{PROXY_VERSION}".encode())
    for source in _FIT_SOURCES:
        key.update(source.read_bytes())
    for name, tensor in model.state_dict().items():
        key.update(name.encode())
        key.update(tensor.detach().contiguous().numpy().tobytes())
    key.update(calibration.contiguous().numpy().tobytes())
    for layer in layers:
        key.update(("|".join([layer.name, *(o.label for o in options[layer.name])])).encode())
    streaming = streams(model, layers, calibration)
    if streaming:                    # estimates at sampled positions: another table than the exact one
        key.update(f"streamed|{POSITIONS}|{FIT_IMAGES}|{SENSITIVITY_IMAGES}".encode())
        key.update(Path(__file__).with_name("streaming.py").read_bytes())
    path = Path(cache_dir) / f"proxy-{key.hexdigest()[:16]}.npz"
    names = [layer.name for layer in layers]
    if path.is_file():
        table, problem = _read_proxy_cache(path, key.hexdigest(), names, options)
        if table is not None:
            return table, True
        if warn:
            warn(f"proxy cache {path} {problem}: recomputing it")
    table = build_proxy_table(model, layers, options, calibration, progress, device, streaming)
    arrays = {**table.errors, **{f"bytes:{name}": size for name, size in table.sizes.items()},
              _SENSITIVITY: np.array([table.sensitivity[n] for n in names])}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays, **{_DIGEST: np.array(_arrays_digest(key.hexdigest(), arrays))})
    return table, False


def _arrays_digest(key: str, arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(key.encode())
    for name in sorted(arrays):
        values = np.ascontiguousarray(arrays[name], dtype=np.float64)
        digest.update(f"{name}|{values.shape}".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def _read_proxy_cache(path: Path, key: str, names: list[str],
                      options: dict[str, list[Option]]) -> tuple[ProxyTable | None, str]:
    """The cached table, or None and what is wrong with the file."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in [*names, *(f"bytes:{n}" for n in names), _SENSITIVITY]}
            stored = str(saved[_DIGEST]) if _DIGEST in saved.files else None
    except Exception as exc:        # zipfile, numpy and OS errors alike: the entry is unusable
        return None, f"cannot be read ({type(exc).__name__})"
    if stored is None:
        return None, "has no checksum (written by an older hwsearch)"
    if _arrays_digest(key, arrays) != stored:
        return None, "is corrupt (checksum mismatch)"
    if any(len(arrays[n]) != len(options[n]) or len(arrays[f"bytes:{n}"]) != len(options[n]) for n in names) \
            or len(arrays[_SENSITIVITY]) != len(names):
        return None, "does not match the option grid"
    errors = {name: arrays[name] for name in names}
    sizes = {name: arrays[f"bytes:{name}"].astype(np.int64) for name in names}
    return ProxyTable(options, errors, sizes, dict(zip(names, arrays[_SENSITIVITY].tolist()))), ""

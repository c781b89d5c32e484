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

import base64
import hashlib
import zlib
from collections import deque
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from hwsearch.atomic_write import atomic_write
from hwsearch.cluster import Pool, ordered
from hwsearch.compression import Fitter, Option, capture_inputs, compress, layer_nbytes
from hwsearch.graph import Layer
from hwsearch.proxy.divergence import fisher_sensitivity, layer_sensitivity
from hwsearch.proxy.streaming import (CAPTURE_LIMIT, FIT_IMAGES, POSITIONS, SENSITIVITY_IMAGES, capture_bytes,
                                      streamed_calls)
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
                      streaming: bool | None = None, pool: Pool | None = None) -> ProxyTable:
    """Relative feature-map reconstruction error and exact bytes of every option of every layer,
    and each layer's sensitivity.

    On a GPU (`device`) the layers' inputs are captured and every compressed layer runs there;
    the fits and the byte counts (the file's encoder) stay on the CPU. `streaming` (by default,
    when `streams` says so) keeps about one layer's inputs at a time and measures the errors at
    sampled positions (`hwsearch.proxy.streaming`). With a `pool` (`hwsearch.cluster`) each
    layer's row is a task on the cluster: this process captures the inputs and sends them.
    """
    if streaming is None:
        streaming = streams(model, layers, calibration)
    if streaming:
        return _streamed_table(model, layers, options, calibration, progress, device, pool)
    with on_device(model, device):
        inputs = capture_inputs(model, [layer.name for layer in layers], calibration.to(device))

    def calls():
        for layer in layers:
            x = inputs.pop(layer.name)                    # each layer's inputs are let go once it is done
            yield layer.name, (exact_row, (model.get_submodule(layer.name), x if pool is None else x.cpu(),
                                           options[layer.name], device))

    errors, sizes = _rows(layers, options, calls(), pool, progress, "proxy table")
    return ProxyTable(options, errors, sizes, layer_sensitivity(model, layers, calibration, progress=progress,
                                                                device=device))


@torch.no_grad()
def exact_row(module: nn.Module, x: torch.Tensor, options: list[Option],
              device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """One layer's row: each option's relative output error on the layer's whole inputs `x`, and its bytes."""
    x = x.to(device)
    with on_device(module, device):
        y = module(x)
    norm = y.norm().clamp_min(1e-12)
    fitter = Fitter(module, x.cpu())    # decompositions shared by the layer's options
    row, size = [], []
    for option in options:
        compressed = compress(module, option, fitter=fitter)
        size.append(layer_nbytes(compressed))
        with on_device(compressed, device):
            row.append(((y - compressed(x)).norm() / norm).item())
    return np.asarray(row), np.asarray(size, dtype=np.int64)


def _rows(layers, options, named_calls, pool, progress, title) -> tuple[dict, dict]:
    """The errors and sizes of each layer's row from `named_calls` ((name, (fn, args)) in the order they come),
    computed here or on `pool`, advancing a progress bar by each row's options."""
    task = progress.add_task(title, total=sum(len(options[l.name]) for l in layers)) if progress else None
    names = deque()

    def calls():
        for name, call in named_calls:
            names.append(name)
            yield call

    errors, sizes = {}, {}
    for row, size in ordered(calls(), pool):
        name = names.popleft()
        errors[name], sizes[name] = row, size
        if progress:
            progress.advance(task, len(row))
    if progress:
        progress.remove_task(task)
    return errors, sizes


def _streamed_table(model, layers, options, calibration, progress, device, pool) -> ProxyTable:
    was_training = model.training
    try:
        with on_device(model.eval(), device):
            calls = streamed_calls(model, layers, options, calibration, device)
            errors, sizes = _rows(layers, options, calls, pool, progress, "proxy table (streamed)")
        sensitivity = fisher_sensitivity(model, layers, calibration[:SENSITIVITY_IMAGES], device=device)
    finally:
        model.train(was_training)
    return ProxyTable(options, errors, sizes, sensitivity)


_SENSITIVITY = "__sensitivity__"    # the cache file's entry for the layers' sensitivities, in layer order
_DIGEST = "__sha256__"              # the cache file's entry for the digest of its key and every array


def cached_proxy_table(model: nn.Module, layers: list[Layer], options: dict[str, list[Option]],
                       calibration: torch.Tensor, cache_dir: Path, progress=None,
                       warn: Callable[[str], None] | None = None, device: str = "cpu",
                       pool: Pool | None = None) -> tuple[ProxyTable, bool]:
    """`build_proxy_table` through a disk cache; returns the table and whether it came from the cache.

    The file name carries a hash of what the table is computed from (weights, calibration
    images, option grid); inside, a digest of that key and of every array. An entry that
    cannot be read, or whose digest does not match (truncated, bit-flipped, or another
    table under a colliding name), is reported through `warn`, rebuilt and overwritten:
    it holds only derived numbers.
    """
    path, key, streaming = _cache_entry(model, layers, options, calibration, cache_dir)
    names = [layer.name for layer in layers]
    if path.is_file():
        table, problem = _read_proxy_cache(path, key, names, options)
        if table is not None:
            return table, True
        if warn:
            warn(f"proxy cache {path} {problem}: recomputing it")
    table = build_proxy_table(model, layers, options, calibration, progress, device, streaming, pool)
    arrays = {**table.errors, **{f"bytes:{name}": size for name, size in table.sizes.items()},
              _SENSITIVITY: np.array([table.sensitivity[n] for n in names])}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays, **{_DIGEST: np.array(_arrays_digest(key, arrays))})
    return table, False


def proxy_cache_file(model: nn.Module, layers: list[Layer], options: dict[str, list[Option]],
                     calibration: torch.Tensor, cache_dir: Path) -> Path:
    """Where `cached_proxy_table` keeps the table of these inputs (a run shares it with its workers)."""
    return _cache_entry(model, layers, options, calibration, cache_dir)[0]


def _cache_entry(model, layers, options, calibration, cache_dir) -> tuple[Path, str, bool]:
    """The cache file, its full key (hex) and whether the table streams."""
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
    return Path(cache_dir) / f"proxy-{key.hexdigest()[:16]}.npz", key.hexdigest(), streaming


def shared_entry(path: Path) -> dict:
    """A cache file as a JSON-able record (its name and compressed bytes), for a run's study to hand its table to
    workers (ResNet-50's 101 kB file is 40 kB of base64)."""
    return {"file": path.name, "npz_zlib_base64": base64.b64encode(zlib.compress(path.read_bytes(), 9)).decode("ascii")}


def put_shared_entry(entry: dict, cache_dir: Path) -> Path:
    """Write a `shared_entry` into this machine's cache (whole or not at all); `cached_proxy_table` then reads it
    if its key is this machine's, checking its digest, as it checks any cache file."""
    name = Path(entry["file"]).name
    if not (name.startswith("proxy-") and name.endswith(".npz")):
        raise ValueError(f"not a proxy table file name: {entry['file']!r}")
    path = Path(cache_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        f.write(zlib.decompress(base64.b64decode(entry["npz_zlib_base64"])))
    return path


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

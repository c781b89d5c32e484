"""Accuracy proxy: how well each compressed layer reproduces the original layer's outputs.

For every (layer, option) the compressed layer is run on that layer's own calibration
inputs (captured from the original model) and compared with the original outputs:

    error = ||y - y_hat||_F / ||y||_F            y: (N, C_out, H, W) or (N, out)

Relative, so that layers of very different scale can be summed. The same pass records the
exact bytes each fitted option takes in the file (sparse positions and codebook indices
make it data-dependent), which the cost table and the search read as the size. Computed
once before the search (the search only reads this table) and cached on disk under a key
made of everything it depends on: the weights, the calibration images and the option grid.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hwsearch.compress import compress, svd
from hwsearch.compress import Fitter, layer_nbytes
from hwsearch.layer_graph import Layer
from hwsearch.options import Option

PROXY_VERSION = 2   # bump when the error definition changes, so old cache entries are not reused
# the fits decide the masks, hence the bytes: a cached table is reused only by the code that computed it
_FIT_SOURCES = sorted((Path(__file__).parent / "compress").glob("*.py"))


@dataclass(frozen=True)
class ProxyTable:
    """errors[layer name][i] is the relative output error of options[layer name][i];
    sizes[layer name][i] the exact bytes that option takes in the file (empty: not measured)."""
    options: dict[str, list[Option]]
    errors: dict[str, np.ndarray]
    sizes: dict[str, np.ndarray] = field(default_factory=dict)


def capture_inputs(model: nn.Module, layers: list[Layer], calibration: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inputs each layer sees when the original model runs on `calibration`."""
    inputs, hooks = {}, []
    for layer in layers:
        def hook(module, args, name=layer.name):
            inputs[name] = args[0].detach()
        hooks.append(model.get_submodule(layer.name).register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(calibration)
    finally:
        for handle in hooks:
            handle.remove()
    return inputs


@torch.no_grad()
def build_proxy_table(model: nn.Module, layers: list[Layer], options: dict[str, list[Option]],
                      calibration: torch.Tensor, progress=None) -> ProxyTable:
    """Relative feature-map reconstruction error, and exact bytes, of every option of every layer."""
    inputs = capture_inputs(model, layers, calibration)
    task = progress.add_task("proxy table", total=sum(len(options[l.name]) for l in layers)) if progress else None
    errors, sizes = {}, {}
    for layer in layers:
        module = model.get_submodule(layer.name)
        x = inputs[layer.name]
        y = module(x)
        norm = y.norm().clamp_min(1e-12)
        fitter = Fitter(module, x)          # decompositions shared by the layer's options
        row, size = [], []
        for option in options[layer.name]:
            compressed = compress(module, option, fitter=fitter)
            row.append(((y - compressed(x)).norm() / norm).item())
            size.append(layer_nbytes(compressed))
            if progress:
                progress.advance(task)
        errors[layer.name], sizes[layer.name] = np.asarray(row), np.asarray(size, dtype=np.int64)
    if progress:
        progress.remove_task(task)
    return ProxyTable(options, errors, sizes)


def cached_proxy_table(model: nn.Module, layers: list[Layer], options: dict[str, list[Option]],
                       calibration: torch.Tensor, cache_dir: Path, progress=None) -> tuple[ProxyTable, bool]:
    """`build_proxy_table` through a disk cache; returns the table and whether it came from the cache.

    An unreadable entry counts as a miss and is rebuilt: it holds only derived numbers.
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
    path = Path(cache_dir) / f"proxy-{key.hexdigest()[:16]}.npz"
    if path.is_file():
        try:
            with np.load(path) as saved:
                errors = {layer.name: saved[layer.name] for layer in layers}
                sizes = {layer.name: saved[f"bytes:{layer.name}"] for layer in layers}
            if all(len(errors[l.name]) == len(sizes[l.name]) == len(options[l.name]) for l in layers):
                return ProxyTable(options, errors, sizes), True
        except (OSError, ValueError, KeyError):
            pass
    table = build_proxy_table(model, layers, options, calibration, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **table.errors, **{f"bytes:{name}": size for name, size in table.sizes.items()})
    os.replace(tmp, path)
    return table, False

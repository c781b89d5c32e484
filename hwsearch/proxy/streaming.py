"""The proxy table of a model too big to hold whole: layer groups, calibration batches, sampled positions.

`build_proxy_table` keeps every layer's input for the whole calibration set and runs every
option's layer on all of it: (layers x calibration images x map size) floats, and as many
full-size layer runs as there are options. For ResNet-50 at 224x224 that is about 20 GB and
24 minutes at 64 images. Here, per layer, only what the table needs is kept:

- the input patches (im2col rows) at `POSITIONS` output positions drawn with a seed from all
  calibration images, as channel-pruning papers sample points (He et al. 2017): the original
  and every compressed layer's outputs there are one matrix product each with the layer's
  dense weight (`CompressedLayer.effective_weight`), so an option costs `POSITIONS` rows, not
  the whole map;
- the whole input of the first `FIT_IMAGES` images, which the data-aware fits and any option
  with no dense weight use.

The model runs in calibration batches, and for as many layers at a time as `memory_bytes`
holds (a forward pass stops after the last layer of its group), so memory is bounded by about
one layer's kept inputs. Sensitivities come from `fisher_sensitivity` (every layer from one
backward pass per batch, where `layer_sensitivity` runs the model twice per layer); on
resnet_fashion its ranking of the layers agrees with the noise-injected one at Spearman 0.956.
The errors are estimates of the exact ones (`tests/test_proxy_streaming.py` checks the ranking
against the exact table); `build_proxy_table` uses this path only when the exact one would keep
more than `CAPTURE_LIMIT` bytes of inputs, so small models' tables do not change.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwsearch.compression import CompressedLayer, Fitter, Geometry, Option, capture_inputs, compress, layer_nbytes
from hwsearch.graph import Layer

CAPTURE_LIMIT = 1 << 30      # bytes of captured inputs above which the table streams
POSITIONS = 1024             # output positions sampled per conv layer (rows per linear layer)
FIT_IMAGES = 32              # images whose whole inputs the fits see
SENSITIVITY_IMAGES = 256     # images the layers' sensitivities are estimated on (`fisher_sensitivity`)
BATCH = 16                   # calibration images per forward pass


class _Stop(Exception):
    """Raised by a hook once a group's last layer has run: the rest of the model is not needed."""


def capture_bytes(model: nn.Module, names: list[str], calibration: torch.Tensor) -> int:
    """Bytes `capture_inputs` would keep for `names` over the whole calibration set."""
    one = capture_inputs(model, names, calibration[:1])
    return sum(x.numel() * x.element_size() for x in one.values()) * len(calibration)


class _Sample:
    """A layer's seeded output positions and what is kept of its inputs: patches there, and the fit images."""

    def __init__(self, module: nn.Module, in_shape: tuple[int, ...], n_images: int, seed: int):
        self.geometry = Geometry.of(module)
        generator = torch.Generator().manual_seed(seed)
        if self.geometry.kind == "conv":
            _, _, h, w = in_shape
            self.padding = _padding(self.geometry)
            (kh, kw), (sh, sw), (dh, dw) = self.geometry.weight_shape[2:], self.geometry.stride, self.geometry.dilation
            self.out_hw = ((h + 2 * self.padding[0] - dh * (kh - 1) - 1) // sh + 1,
                           (w + 2 * self.padding[1] - dw * (kw - 1) - 1) // sw + 1)
            total = n_images * self.out_hw[0] * self.out_hw[1]
        else:
            total = n_images * int(np.prod(in_shape[1:-1], dtype=np.int64))
        chosen = torch.randperm(total, generator=generator)[:POSITIONS] if total > POSITIONS else torch.arange(total)
        self.positions = chosen.sort().values
        self.per_image = total // n_images
        self.rows: list[torch.Tensor] = []
        self.fit_inputs: list[torch.Tensor] = []

    def keep(self, x: torch.Tensor, first: int) -> None:
        """Keep batch `x` (images first .. first + len(x) - 1): its sampled rows and its fit images."""
        x = x.detach()
        if first < FIT_IMAGES:
            self.fit_inputs.append(x[:FIT_IMAGES - first].cpu())
        lo, hi = first * self.per_image, (first + len(x)) * self.per_image
        local = self.positions[(self.positions >= lo) & (self.positions < hi)] - lo
        if not len(local):
            return
        if self.geometry.kind == "linear":
            self.rows.append(x.reshape(-1, x.shape[-1])[local.to(x.device)].cpu())
            return
        geo = self.geometry
        cols = F.unfold(x, geo.weight_shape[2:], geo.dilation, self.padding, geo.stride)     # (B, C k k, L)
        image, where = local // self.per_image, local % self.per_image
        self.rows.append(cols[image.to(x.device), :, where.to(x.device)].cpu())

    def outputs(self, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The layer's outputs at the sampled positions with a dense `weight` shaped like the original's."""
        rows = torch.cat(self.rows)
        g, k = self.geometry.groups, weight.shape[0]
        if g == 1:
            y = rows @ weight.reshape(k, -1).T
        else:                                                   # (g, P, C/g k k) @ (g, C/g k k, K/g)
            y = torch.bmm(rows.view(len(rows), g, -1).transpose(0, 1), weight.reshape(g, k // g, -1).transpose(1, 2))
            y = y.transpose(0, 1).reshape(len(rows), k)
        return y if bias is None else y + bias


def _padding(geo: Geometry) -> tuple[int, int]:
    if not isinstance(geo.padding, str):
        return geo.padding
    if geo.padding == "valid":
        return (0, 0)
    return tuple(d * (k - 1) // 2 for d, k in zip(geo.dilation, geo.weight_shape[2:]))   # "same", stride 1


def capture_samples(model: nn.Module, names: list[str], calibration: torch.Tensor, *, seed: int = 0,
                    memory_bytes: int = CAPTURE_LIMIT, device: str = "cpu"):
    """Yield `(name, _Sample)` for every named layer, capturing a group of layers per pass over the
    calibration batches; a group holds about `memory_bytes` of kept inputs, or one layer."""
    # one image through the model: each layer's input shape, in the order the layers run
    shapes = {name: tuple(x.shape) for name, x in capture_inputs(model, names, calibration[:1].to(device)).items()}
    order = list(shapes)
    n = len(calibration)
    kept = {name: _kept_bytes(model.get_submodule(name), shapes[name], n) for name in order}
    groups, current, size = [], [], 0
    for name in order:
        if current and size + kept[name] > memory_bytes:
            groups.append(current)
            current, size = [], 0
        current.append(name)
        size += kept[name]
    groups.append(current)
    for group in groups:
        samples = {name: _Sample(model.get_submodule(name), shapes[name], n, seed + names.index(name))
                   for name in group}
        _run_group(model, samples, group[-1], calibration, device)
        for name in group:
            yield name, samples.pop(name)


def _kept_bytes(module: nn.Module, in_shape: tuple[int, ...], n_images: int) -> int:
    geo = Geometry.of(module)
    per_image = int(np.prod(in_shape[1:], dtype=np.int64)) * 4
    row = geo.weight_shape[1] * geo.groups * (int(np.prod(geo.weight_shape[2:])) if geo.kind == "conv" else 1) * 4
    return min(n_images, FIT_IMAGES) * per_image + POSITIONS * row


def _run_group(model: nn.Module, samples: dict[str, _Sample], last: str, calibration: torch.Tensor,
               device: str) -> None:
    first = [0]
    hooks = []
    for name, sample in samples.items():
        def keep(module, args, sample=sample):
            sample.keep(args[0], first[0])
        hooks.append(model.get_submodule(name).register_forward_pre_hook(keep))

    def stop(module, args, output):
        raise _Stop

    hooks.append(model.get_submodule(last).register_forward_hook(stop))
    try:
        with torch.no_grad():
            for batch in calibration.split(BATCH):
                try:
                    model(batch.to(device))
                except _Stop:
                    pass
                first[0] += len(batch)
    finally:
        for handle in hooks:
            handle.remove()


def streamed_calls(model: nn.Module, layers: list[Layer], options: dict[str, list[Option]],
                   calibration: torch.Tensor, device: str = "cpu"):
    """Yield `(name, (streamed_row, args))` per layer in the order the layers run, capturing each layer
    group's samples as the calls are taken (by this process or a cluster's workers). `model` must be in
    eval mode."""
    for name, sample in capture_samples(model, [layer.name for layer in layers], calibration, device=device):
        module = model.get_submodule(name)
        yield name, (streamed_row, (module if device == "cpu" else copy.deepcopy(module).cpu(), sample, options[name]))


def streamed_row(module: nn.Module, sample: _Sample, options: list[Option]) -> tuple[np.ndarray, np.ndarray]:
    """Each option's relative output error at the sampled positions, and its exact bytes in the file."""
    fit_inputs = torch.cat(sample.fit_inputs)
    weight = module.weight.detach().float().cpu()
    bias = None if module.bias is None else module.bias.detach().float().cpu()
    with torch.no_grad():
        y = sample.outputs(weight, bias)
        norm = y.norm().clamp_min(1e-12)
        fitter = Fitter(module, fit_inputs)
        errors, sizes = [], []
        for option in options:
            compressed = compress(fitter.module, option, fitter=fitter)
            sizes.append(layer_nbytes(compressed))
            errors.append(_error(compressed, fitter.module, sample, fit_inputs, y, norm))
    return np.asarray(errors), np.asarray(sizes, dtype=np.int64)


def _error(compressed: nn.Module, original: nn.Module, sample: _Sample, fit_inputs: torch.Tensor,
           y: torch.Tensor, norm: torch.Tensor) -> float:
    if isinstance(compressed, CompressedLayer):
        bias = None if compressed.bias is None else compressed.bias.detach()
        y_hat = sample.outputs(compressed.effective_weight().detach(), bias)
        return float((y - y_hat).norm() / norm)
    # no dense weight to apply at the positions: compare whole outputs on the fit images
    reference = original(fit_inputs)
    return float((reference - compressed(fit_inputs)).norm() / reference.norm().clamp_min(1e-12))

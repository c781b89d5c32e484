"""A compressed layer as a runnable module, and the verbs that make one.

    apply_(model, {"layer1.0.conv1": Option(rank=16, bits=4), "fc": Option(sparsity=0.9)})
    apply_(model, {"fc": Option(method="svd", rank=8, data_aware=True)}, calibration=images)

`compress` fits one layer with its operator, prunes each factor by magnitude (unless the
structure fixed its mask), and quantizes it: uniform per-row codes, or a k-means codebook
(`sharing`). Data-aware options need the layer's calibration inputs: `apply_` captures
them from the original model (every layer sees what the uncompressed model feeds it, as
the proxy table does), so that retraining starts from the very fit the search priced.
"""
from __future__ import annotations

import torch
from torch import nn

from hwsearch.compression._base import Fitter, Geometry, Step, Structure, Svd, operator_for
from hwsearch.compression.factors import Factor, magnitude_mask
from hwsearch.compression.sharing import SharedFactor
from hwsearch.errors import OptionError
from hwsearch.compression.options import Option


class CompressedLayer(nn.Module):
    """A conv or linear layer whose weight is a few factors arranged as `structure`."""

    def __init__(self, geometry: Geometry, option: Option, structure: Structure,
                 factors: list[Factor | SharedFactor], bias: torch.Tensor | None):
        super().__init__()
        self.geometry, self.option, self.structure = geometry, option, structure
        self.factors = nn.ModuleList(factors)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.channels = None      # a ChannelChoice, on the first layer of a channel group that was pruned

    # read by older callers (onnx_export, results)
    @property
    def kind(self) -> str:
        return self.geometry.kind

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return self.geometry.weight_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and torch.is_autocast_enabled("cuda"):
            # mixed precision leaves this layer alone: its codes, masks and factors compute in float32, as exported
            with torch.autocast("cuda", enabled=False):
                return self._forward(x.float())
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = [factor() for factor in self.factors]
        out = None
        for i, chain in enumerate(self.structure):
            y = x
            for j, step in enumerate(chain):
                last = i == 0 and j == len(chain) - 1
                y = step.apply(y, weights[step.factor], self.bias if last else None)
            out = y if out is None else out + y
        return out

    def effective_weight(self) -> torch.Tensor:
        """The dense weight this layer applies, shaped like the original module's."""
        weights = [factor() for factor in self.factors]
        total = sum(_compose(chain, weights, self.geometry) for chain in self.structure)
        return total.view(self.geometry.weight_shape)

    def extra_repr(self) -> str:
        return f"{self.geometry.kind} {tuple(self.geometry.weight_shape)}, option={self.option.label}"


def _compose(chain: tuple[Step, ...], weights: list[torch.Tensor], geometry: Geometry) -> torch.Tensor:
    """One chain's steps as a single dense weight.

    Linear: a product of matrices. Conv: consecutive steps compose when, along each spatial
    axis, one of the two kernels is 1 wide with stride 1 (a 1x1 after a k x k, a 1 x kw
    after a kh x 1): kernel[k, c, i, j] = sum_r second[k, r, i2, j2] * first[r, c, i1, j1].
    """
    first = chain[0]
    if geometry.kind == "linear":
        out = weights[first.factor]
        for step in chain[1:]:
            out = weights[step.factor] @ out
        return out
    g = first.groups
    out = weights[first.factor].view(g, first.out_channels // g, first.in_channels // g, *first.kernel)
    for step in chain[1:]:
        second = weights[step.factor].view(g, step.out_channels // g, step.in_channels // g, *step.kernel)
        a2, b2 = step.kernel
        a1, b1 = out.shape[-2:]
        combined = torch.einsum("gkrij,grcmn->gkcimjn", second, out)   # (G, K, C, a2, a1, b2, b1)
        out = combined.reshape(g, second.shape[1], out.shape[2], a2 * a1, b2 * b1)
    return out.reshape(geometry.out_channels, -1)


class Sum(nn.Module):
    """The sum of its branches' outputs on one input (a layer stored as low rank plus sparse)."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


def plain_layer(layer: CompressedLayer) -> nn.Module:
    """The plain modules computing what `layer` computes: a Conv2d or Linear per step, chains as
    `nn.Sequential`, several chains as a `Sum` (see `onnx_export.plain_`)."""
    with torch.no_grad():
        weights = [factor().detach().clone() for factor in layer.factors]   # (rows, cols) each
        bias = None if layer.bias is None else layer.bias.detach().clone()
    chains = []
    for i, chain in enumerate(layer.structure):
        modules = []
        for j, step in enumerate(chain):
            step_bias = bias if (i == 0 and j == len(chain) - 1) else None
            modules.append(_step_module(step, weights[step.factor], step_bias))
        chains.append(modules[0] if len(modules) == 1 else nn.Sequential(*modules))
    plain = chains[0] if len(chains) == 1 else Sum(*chains)
    return plain.train(layer.training)


def _step_module(step: Step, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    if step.kernel is None:
        return _linear(weight, bias)
    kernel = weight.view(step.out_channels, step.in_channels // step.groups, *step.kernel)
    return _conv(kernel, bias, groups=step.groups, stride=step.stride, padding=step.padding,
                 dilation=step.dilation)


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    # Built on the meta device: no random initialisation of weights that are replaced at once.
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    linear.weight = nn.Parameter(weight)
    if bias is not None:
        linear.bias = nn.Parameter(bias)
    return linear


def _conv(weight: torch.Tensor, bias: torch.Tensor | None, *, groups: int, **geometry) -> nn.Conv2d:
    k, cg, kh, kw = weight.shape
    conv = nn.Conv2d(cg * groups, k, (kh, kw), groups=groups, bias=bias is not None, device="meta", **geometry)
    conv.weight = nn.Parameter(weight)
    if bias is not None:
        conv.bias = nn.Parameter(bias)
    return conv


def make_factor(matrix: torch.Tensor, mask: torch.Tensor | None, option: Option, *,
                fitter: Fitter | None = None, key=None) -> Factor | SharedFactor:
    """Prune `matrix` by magnitude (unless `mask` is given) and quantize it as `option` says.

    With a `fitter` and a `key` naming the matrix, the mask is computed once per sparsity."""
    if mask is None and option.sparsity > 0:
        if fitter is not None and key is not None:
            mask = fitter.cached(("mask", key, option.sparsity), lambda: magnitude_mask(matrix, option.sparsity))
        else:
            mask = magnitude_mask(matrix, option.sparsity)
    if option.codebook:
        return SharedFactor.fit(matrix, mask, option.bits, option.codebook, option.init)
    return Factor(matrix, mask, option.bits)


def compress(module: nn.Conv2d | nn.Linear, option: Option, *, inputs: torch.Tensor | None = None,
             svd_cache: Svd | None = None, fitter: Fitter | None = None) -> CompressedLayer:
    """Compress one layer under `option`.

    `inputs`: what the original model feeds this layer (data-aware options need them);
    `svd_cache`: its weight's thin SVD, when trying many ranks; `fitter`: a `Fitter` shared
    across options of this layer (holds both, and every other decomposition it computes).
    """
    fitter = fitter or Fitter(module, inputs, svd=svd_cache)
    operator = operator_for(option)
    structure = operator.structure(fitter.geometry, option)
    # the fit depends on the structure alone: options differing in sparsity or bits share it
    key = (option.method, option.rank, option.rank_out, option.density, option.data_aware)
    fitted = fitter.cached(("fit", key), lambda: operator.fit(fitter, option))
    factors = [make_factor(matrix, mask, option, fitter=fitter, key=(key, i))
               for i, (matrix, mask) in enumerate(zip(fitted.matrices, fitted.masks))]
    bias = fitted.bias if fitted.bias is not None else fitter.bias
    return CompressedLayer(fitter.geometry, option, structure, factors, bias)


def svd(module: nn.Conv2d | nn.Linear) -> Svd:
    """Thin SVD of a layer's weight as a (K, n) matrix; cache it when trying many ranks."""
    return Fitter(module).svd()


def apply_(model: nn.Module, plan: dict, *, calibration: torch.Tensor | None = None) -> nn.Module:
    """Replace every layer named in `plan` by its compressed form, in place; returns `model`.

    `plan` maps a layer name to an `Option`, or a channel group (any key) to a `UnitOption`:
    its channels are pruned first, then each of its layers compressed. `calibration`: model
    inputs; data-aware options (and pruning by reconstruction) are fitted on what the
    original model feeds their layers on them.
    """
    from hwsearch.compression.channels import UnitOption, member_inputs, prune_unit_
    units = {key: option for key, option in plan.items() if isinstance(option, UnitOption)}
    layers = {name: option for name, option in plan.items() if not isinstance(option, UnitOption)}
    aware = [name for name, option in layers.items() if option.data_aware]
    aware += [name for unit in units.values() if unit.data_aware for name in unit.group.layers]
    wanted = aware + [name for unit in units.values() if unit.keep is not None for name in unit.group.layers]
    if aware and calibration is None:
        raise OptionError(f"options of {aware[:3]} are fitted to feature maps: pass calibration= (model inputs) "
                          "to apply_")
    inputs = capture_inputs(model, list(dict.fromkeys(wanted)), calibration) if calibration is not None else {}
    for unit in units.values():
        choice = prune_unit_(model, unit, inputs or None)
        for index, (name, option) in enumerate(zip(unit.group.layers, unit.members)):
            layer = compress(model.get_submodule(name), option,
                             inputs=member_inputs(choice, name, inputs.get(name)))
            layer.channels = choice if index == 0 else None
            _set(model, name, layer)
    for name, option in layers.items():
        _set(model, name, compress(model.get_submodule(name), option, inputs=inputs.get(name)))
    return model


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def capture_inputs(model: nn.Module, names: list[str], calibration: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inputs each named layer sees when `model` runs on `calibration` (in eval mode; the mode is restored)."""
    inputs, hooks = {}, []
    for name in names:
        def hook(module, args, name=name):
            inputs[name] = args[0].detach()
        hooks.append(model.get_submodule(name).register_forward_pre_hook(hook))
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(calibration)
    finally:
        for handle in hooks:
            handle.remove()
        model.train(was_training)
    return inputs

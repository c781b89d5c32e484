"""Compression operators: a plan of per-layer options applied to a model in place.

A compressed layer holds one or two `Factor`s (weight matrices). Each factor keeps its
float weight, a fixed magnitude mask and a bit width; its forward returns the weight
the deployed file will hold (masked, then quantized per output row), so fine-tuning
sees exactly what is exported (straight-through gradients through the rounding).

    apply_(model, {"layer1.0.conv1": Option(rank=16, bits=4), "fc": Option(sparsity=0.9)})

Low rank (Xue et al. 2013 for linear; the channel factorisation of Zhang et al. 2015
for conv): W (K x n) ~ B (K x r) A (r x n) by truncated SVD, A a conv with r filters of
the original kernel and stride, B a 1x1 conv. The singular values are split evenly
(sqrt) between A and B so that both factors quantize alike.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from hwsearch.options import Option, Plan

Svd = tuple[torch.Tensor, torch.Tensor, torch.Tensor]   # U (K, k), S (k,), Vh (k, n)


def kept_count(numel: int, sparsity: float) -> int:
    """Weights kept by magnitude pruning; the file format and the size table both use this."""
    return numel - int(round(sparsity * numel))


def quantize(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row quantization: integer codes in [-(2^(b-1)-1), 2^(b-1)-1] and fp32 scales."""
    qmax = 2 ** (bits - 1) - 1
    amax = weight.detach().abs().amax(dim=1)                         # (rows,)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    codes = torch.round(weight.detach() / scale[:, None]).clamp_(-qmax, qmax)
    return codes, scale


class _QuantizeSTE(torch.autograd.Function):
    """Forward: the dequantized weight, exactly as exported. Backward: identity."""

    @staticmethod
    def forward(ctx, weight, bits):
        codes, scale = quantize(weight, bits)
        return codes * scale[:, None]

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class Factor(nn.Module):
    """One weight matrix (rows, cols) with a fixed mask and weight bits.

    `frozen` factors (loaded from a file) already hold the exported values and are
    returned as they are, so a loaded model reproduces the exported one bit for bit.
    """

    def __init__(self, matrix: torch.Tensor, mask: torch.Tensor | None, bits: int, frozen: bool = False):
        super().__init__()
        self.weight = nn.Parameter(matrix.detach().clone().contiguous())
        self.register_buffer("mask", mask)
        self.bits = bits
        self.frozen = frozen

    def forward(self) -> torch.Tensor:
        if self.frozen:
            return self.weight
        weight = self.weight if self.mask is None else self.weight * self.mask
        return _QuantizeSTE.apply(weight, self.bits) if self.bits < 32 else weight

    def extra_repr(self) -> str:
        kept = "" if self.mask is None else f", kept={int(self.mask.sum())}"
        return f"shape={tuple(self.weight.shape)}, bits={self.bits}{kept}"


class CompressedLayer(nn.Module):
    """A conv or linear layer whose weight is one factor, or two for a low-rank option."""

    def __init__(self, module: nn.Conv2d | nn.Linear, option: Option, factors: list[Factor]):
        super().__init__()
        self.option = option
        self.kind = "conv" if isinstance(module, nn.Conv2d) else "linear"
        self.weight_shape = tuple(module.weight.shape)
        if self.kind == "conv":
            self.stride, self.padding = module.stride, module.padding
            self.dilation, self.groups = module.dilation, module.groups
        self.factors = nn.ModuleList(factors)
        self.bias = None if module.bias is None else nn.Parameter(module.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = [factor() for factor in self.factors]
        if self.kind == "linear":
            for weight in weights[:-1]:
                x = F.linear(x, weight)
            return F.linear(x, weights[-1], self.bias)
        k, cg, kh, kw = self.weight_shape
        if len(weights) == 1:
            return F.conv2d(x, weights[0].view(k, cg, kh, kw), self.bias,
                            self.stride, self.padding, self.dilation, self.groups)
        first, second = weights                                          # (r, cg*kh*kw), (K, r)
        hidden = F.conv2d(x, first.view(-1, cg, kh, kw), None, self.stride, self.padding, self.dilation)
        return F.conv2d(hidden, second[:, :, None, None], self.bias)

    def effective_weight(self) -> torch.Tensor:
        """The dense weight this layer applies, shaped like the original module's."""
        weights = [factor() for factor in self.factors]
        matrix = weights[0] if len(weights) == 1 else weights[1] @ weights[0]
        return matrix.view(self.weight_shape)


def factor_shapes(weight_shape: tuple[int, ...], option: Option) -> list[tuple[int, int]]:
    """Shapes of the factors an option gives a layer: [(K, n)] or [(r, n), (K, r)]."""
    rows, cols = weight_shape[0], math.prod(weight_shape[1:])
    return [(rows, cols)] if option.rank is None else [(option.rank, cols), (rows, option.rank)]


def svd(module: nn.Conv2d | nn.Linear) -> Svd:
    """Thin SVD of a layer's weight as a (K, n) matrix; cache it when trying many ranks."""
    matrix = module.weight.detach().reshape(module.weight.shape[0], -1).double()
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    return u, s, vh


def compress(module: nn.Conv2d | nn.Linear, option: Option, *, svd_cache: Svd | None = None) -> CompressedLayer:
    """Compress one layer: factorise (if ranked), prune each factor by magnitude, set its bits."""
    if option.rank is None:
        matrices = [module.weight.detach().reshape(module.weight.shape[0], -1)]
    else:
        if getattr(module, "groups", 1) != 1:
            raise ValueError("low-rank options apply to ungrouped layers only")
        u, s, vh = svd_cache if svd_cache is not None else svd(module)
        root = s[:option.rank].sqrt()
        matrices = [(vh[:option.rank] * root[:, None]).float(), (u[:, :option.rank] * root).float()]
    factors = []
    for matrix in matrices:
        mask = None
        if option.sparsity > 0:
            kept = kept_count(matrix.numel(), option.sparsity)
            mask = torch.zeros(matrix.numel(), dtype=torch.bool)
            mask[matrix.abs().flatten().topk(kept).indices] = True
            mask = mask.view_as(matrix)
        factors.append(Factor(matrix, mask, option.bits))
    return CompressedLayer(module, option, factors)


def apply_(model: nn.Module, plan: Plan) -> nn.Module:
    """Replace every layer named in `plan` by its compressed form, in place; returns `model`."""
    for name, option in plan.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, compress(getattr(parent, child), option))
    return model

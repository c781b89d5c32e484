"""One weight matrix as the file holds it: a fixed mask, then uniform per-row integer codes.

A `Factor`'s forward returns the weight the deployed file will hold (masked, then
quantized per output row), so fine-tuning sees exactly what is exported (straight-through
gradients through the rounding). `frozen` factors, loaded from a file, hold the exported
values already and return them as they are, so a loaded model reproduces the exported one
bit for bit. Weight sharing (a k-means codebook instead of uniform codes) is `SharedFactor`
in `sharing`.
"""
from __future__ import annotations

import torch
from torch import nn


def kept_count(numel: int, sparsity: float) -> int:
    """Weights kept by magnitude pruning; the file format and the size table both use this."""
    return numel - int(round(sparsity * numel))


def magnitude_mask(matrix: torch.Tensor, sparsity: float) -> torch.Tensor | None:
    """The largest-magnitude `kept_count` entries of `matrix`; None when all are kept."""
    kept = kept_count(matrix.numel(), sparsity)
    return None if kept == matrix.numel() else top_k_mask(matrix, kept)


def top_k_mask(matrix: torch.Tensor, k: int) -> torch.Tensor:
    """True at the `k` largest-magnitude entries of `matrix`."""
    mask = torch.zeros(matrix.numel(), dtype=torch.bool)
    mask[matrix.detach().abs().flatten().topk(k).indices] = True
    return mask.view_as(matrix)


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
    """One weight matrix (rows, cols) with a fixed mask and weight bits (32: float32)."""

    def __init__(self, matrix: torch.Tensor, mask: torch.Tensor | None, bits: int, frozen: bool = False):
        super().__init__()
        self.weight = nn.Parameter(matrix.detach().clone().contiguous())
        self.register_buffer("mask", mask)
        self.bits = bits
        self.frozen = frozen

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)

    def forward(self) -> torch.Tensor:
        if self.frozen:
            return self.weight
        weight = self.weight if self.mask is None else self.weight * self.mask
        return _QuantizeSTE.apply(weight, self.bits) if self.bits < 32 else weight

    def extra_repr(self) -> str:
        kept = "" if self.mask is None else f", kept={int(self.mask.sum())}"
        return f"shape={tuple(self.weight.shape)}, bits={self.bits}{kept}"

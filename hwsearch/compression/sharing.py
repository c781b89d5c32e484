"""Weight sharing (Han, Mao and Dally, "Deep Compression", ICLR 2016, section 3).

Per factor, a 1-D k-means over the kept weights; each weight then stores only the index
of its cluster (`bits` bits, 2^bits clusters) and the layer stores the centroids (the
codebook) at 32 bits, or at 16 as Hsiao (2017) does. Retraining keeps every weight in
its cluster and trains the centroids: the gradient of a centroid is the sum of the
gradients of its weights, which is what autograd gives for `centroids[codes]`. That sum is
divided by the mean number of weights per cluster, so that one learning rate suits weights
and centroids alike (with the plain sum, fine-tuning LeNet-300-100's 5-bit codebooks at the
default rate of 0.01 diverged to NaN within an epoch).

Centroid initialisation (their figure 4): linear (evenly between the smallest and the
largest weight; the paper's choice, because it keeps the few large weights represented),
Forgy (k weights drawn at random) and density-based (evenly in the weights' CDF).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

MAX_ITERATIONS = 50


def kmeans_1d(values: np.ndarray, clusters: int, init: str = "linear", *, seed: int = 0,
              order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(centroids (clusters,) ascending, codes (len(values),)) of Lloyd's k-means in one dimension.

    In 1-D the clusters of sorted values are contiguous runs split at the midpoints between
    centroids, so an iteration is one `searchsorted` and a difference of prefix sums.
    `order` (an argsort of `values`) may be passed when the caller already has it.
    Deterministic: the same values, clusters, init and seed give the same result.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return np.zeros(clusters), np.zeros(0, dtype=np.int64)
    order = np.argsort(values) if order is None else order       # ties share a code: any order gives the same
    ordered = values[order]                                            # (n,) ascending
    prefix = np.concatenate([[0.0], np.cumsum(ordered)])
    if init == "linear":
        centroids = np.linspace(ordered[0], ordered[-1], clusters)
    elif init == "density":
        centroids = ordered[np.linspace(0, len(ordered) - 1, clusters).round().astype(np.int64)]
    elif init == "forgy":
        rng = np.random.default_rng(seed)
        centroids = np.sort(values[rng.choice(len(values), size=clusters, replace=len(values) < clusters)])
    else:
        raise ValueError(f"init must be linear, forgy or density, got {init!r}")
    for _ in range(MAX_ITERATIONS):
        starts = _run_starts(ordered, centroids)                       # (clusters + 1,)
        counts = np.diff(starts)
        sums = prefix[starts[1:]] - prefix[starts[:-1]]
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)   # an empty cluster stays put
        updated.sort()
        if np.array_equal(updated, centroids):
            break
        centroids = updated
    starts = _run_starts(ordered, centroids)
    codes_sorted = np.repeat(np.arange(clusters), np.diff(starts))
    codes = np.empty(len(values), dtype=np.int64)
    codes[order] = codes_sorted
    return centroids, codes


def _run_starts(ordered: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index in `ordered` where each centroid's run starts (the nearest centroid wins; ties go left)."""
    bounds = (centroids[1:] + centroids[:-1]) / 2
    return np.concatenate([[0], np.searchsorted(ordered, bounds, side="right"), [len(ordered)]])


class _Fp16STE(torch.autograd.Function):
    """Forward: the value rounded to float16 (as stored). Backward: identity."""

    @staticmethod
    def forward(ctx, x):
        return x.half().float()

    @staticmethod
    def backward(ctx, grad):
        return grad


class _ScaleGrad(torch.autograd.Function):
    """Forward: identity. Backward: the gradient times `scale`."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class SharedFactor(nn.Module):
    """A (rows, cols) weight matrix whose kept weights each index one of 2^bits shared values.

    `centroids` (2^bits,) is the trained parameter; `codes` (rows, cols) and `mask` are fixed.
    With a 16-bit codebook the forward pass uses the centroids rounded to float16, as stored.
    """

    def __init__(self, centroids: torch.Tensor, codes: torch.Tensor, mask: torch.Tensor | None, bits: int,
                 codebook_bits: int):
        super().__init__()
        self.centroids = nn.Parameter(centroids.detach().float().clone())
        self.register_buffer("codes", codes.to(torch.uint8 if bits <= 8 else torch.int16))
        self.register_buffer("mask", mask)
        self.bits, self.codebook_bits = bits, codebook_bits

    @classmethod
    def fit(cls, matrix: torch.Tensor, mask: torch.Tensor | None, bits: int, codebook_bits: int, init: str,
            *, seed: int = 0) -> "SharedFactor":
        """k-means over the kept entries of `matrix` (rows, cols)."""
        flat = matrix.detach().flatten().double().numpy()
        kept = flat if mask is None else flat[mask.flatten().numpy()]
        centroids, kept_codes = kmeans_1d(kept, 2 ** bits, init, seed=seed)
        codes = np.zeros(matrix.numel(), dtype=np.int64)
        if mask is None:
            codes[:] = kept_codes
        else:
            codes[mask.flatten().numpy()] = kept_codes
        return cls(torch.from_numpy(centroids), torch.from_numpy(codes).view(matrix.shape), mask, bits, codebook_bits)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.codes.shape)

    @property
    def gradient_scale(self) -> float:
        """1 / the mean number of weights per cluster (see the module docstring)."""
        kept = self.codes.numel() if self.mask is None else int(self.mask.sum())
        return (1 << self.bits) / max(kept, 1)

    def stored_centroids(self) -> torch.Tensor:
        centroids = _ScaleGrad.apply(self.centroids, self.gradient_scale)
        return _Fp16STE.apply(centroids) if self.codebook_bits == 16 else centroids

    def forward(self) -> torch.Tensor:
        weight = self.stored_centroids()[self.codes.long()]                # (rows, cols)
        return weight if self.mask is None else torch.where(self.mask, weight, torch.zeros((), dtype=weight.dtype))

    def extra_repr(self) -> str:
        kept = "" if self.mask is None else f", kept={int(self.mask.sum())}"
        return f"shape={self.shape}, clusters={2 ** self.bits}, codebook={self.codebook_bits} bits{kept}"

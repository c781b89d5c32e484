"""A layer under an option, as the loop nests the hardware runs.

Every costed op becomes one or more convolution-shaped loop nests,

    for g < G, b < B, k < K, oy < OY, ox < OX, c < C, fy < FY, fx < FX:
        O[b, g, k, oy, ox] += W[g, k, c, fy, fx] * I[b, g, c, oy*SY + fy*DY, ox*SX + fx*DX]

and the cost models price nests, not layers. A linear layer is the nest with OY =
positions and OX = FY = FX = 1. A compressed layer is one nest per step of its
structure (`hwsearch.compression`): a rank-r SVD two, Tucker-2 three, low rank plus sparse
three (the sparse copy of the layer beside the two low-rank steps), each hidden map
written by one step and read by the next; its weights move as the file stores them
(codebook indices and codebook, bitmask or relative sparse indices, packed codes). In a
matmul between activations, W is an activation too. Pooling and elementwise ops are nests
without weights, priced by the bytes they move.

`Nests` holds one array per field, one entry per nest, so that all options of all
layers are priced in one vectorised pass.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Sequence

import numpy as np

from hwsearch.compression import Geometry, Option, estimate_layer_nbytes, factor_shapes, kept_count, structure_of
from hwsearch.compression.lowrank_sparse import sparse_count
from hwsearch.graph import Layer

MAC, POOL, ELEMENTWISE = 0, 1, 2     # nest kinds


@dataclass
class Nests:
    """One entry per loop nest; `owner[i]` is the (layer, option) pair nest i belongs to."""
    owner: np.ndarray
    kind: np.ndarray        # MAC, POOL or ELEMENTWISE
    B: np.ndarray
    G: np.ndarray
    K: np.ndarray
    C: np.ndarray
    OY: np.ndarray
    OX: np.ndarray
    FY: np.ndarray
    FX: np.ndarray
    SY: np.ndarray
    SX: np.ndarray
    IY: np.ndarray          # input rows and columns one image needs (the padded input, clipped to the real one)
    IX: np.ndarray
    bits: np.ndarray        # weight bits as stored (32: float32)
    density: np.ndarray     # kept share of the weights (1 - sparsity)
    file_bytes: np.ndarray  # bytes W takes in the file (0 when W is an activation)
    w_is_activation: np.ndarray
    in_elems: np.ndarray    # POOL and ELEMENTWISE: elements read per image
    out_elems: np.ndarray   # elements written per image
    tap_share: np.ndarray   # share of the MACs whose filter tap lands inside the input, not on padding
    weight_share: np.ndarray  # share of the weights some output applies to real input (not only padding)
    shared: np.ndarray      # weights are indices into a codebook, looked up into `bits`-bit values on the way in

    def __len__(self) -> int:
        return len(self.owner)

    @property
    def macs(self) -> np.ndarray:
        """Dense multiply-accumulates of each nest (pool: one compare or add per window element)."""
        per = self.B * self.G * self.K * self.OY * self.OX * self.C * self.FY * self.FX
        return np.where(self.kind == ELEMENTWISE, 0, per).astype(np.float64)

    @property
    def weight_elems(self) -> np.ndarray:
        return np.where(self.kind == MAC, self.G * self.K * self.C * self.FY * self.FX, 0).astype(np.float64)

    @property
    def positions(self) -> np.ndarray:
        """Output positions of one group: batch x rows x columns."""
        return (self.B * self.OY * self.OX).astype(np.float64)

    @property
    def depthwise(self) -> np.ndarray:
        return (self.kind == MAC) & (self.C == 1) & (self.G > 1) & ~self.w_is_activation

    @staticmethod
    def concat(parts: list["Nests"]) -> "Nests":
        return Nests(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Nests)))


def build_nests(pairs: list[tuple[Layer, Option]], batch: int = 1, sizes: Sequence[int | None] | None = None) -> Nests:
    """The loop nests of every (layer, option) pair, for `batch` images at once.

    `sizes[i]`: the exact bytes pair i's layer takes in the file (measured on its fitted
    factors, see `proxy`), or None for the estimate from shapes (`estimate_layer_nbytes`).
    """
    rows: list[tuple] = []
    for owner, (layer, option) in enumerate(pairs):
        rows.extend(_nests_of(owner, layer, option, batch, None if sizes is None else sizes[owner]))
    if not rows:
        return Nests(*(np.zeros(0, dtype=np.int64) for _ in fields(Nests)))
    columns = list(zip(*rows))
    arrays = [np.asarray(col) for col in columns]
    return Nests(*arrays)


def _row(owner, kind, B, G, K, C, OY, OX, FY=1, FX=1, SY=1, SX=1, IY=None, IX=None, bits=32, density=1.0,
         file_bytes=0, w_is_activation=False, in_elems=0, out_elems=0, tap_share=1.0, weight_share=1.0,
         shared=False) -> tuple:
    IY = OY if IY is None else IY
    IX = OX if IX is None else IX
    return (owner, kind, B, G, K, C, OY, OX, FY, FX, SY, SX, IY, IX, bits, density, file_bytes, w_is_activation,
            in_elems, out_elems, tap_share, weight_share, shared)


def _taps(out: int, size: int, kernel: int, stride: int, pad: int, dilation: int) -> tuple[float, float]:
    """Along one axis: (share of (output, tap) pairs inside the input, share of taps inside it for some output)."""
    inside = [[0 <= o * stride - pad + f * dilation < size for f in range(kernel)] for o in range(out)]
    pairs = sum(map(sum, inside)) / (out * kernel)
    used = sum(any(row[f] for row in inside) for f in range(kernel)) / kernel
    return pairs, used


@lru_cache(maxsize=4096)
def padding_shares(layer: Layer) -> tuple[float, float]:
    """(tap_share, weight_share) of a convolution: how much of its work and weights meets only padding.

    A 3x3 convolution padded by 1 on a 1x1 map applies only its centre tap: a kernel that
    skips padding does 1/9 of the MACs and reads 1/9 of the weights.
    """
    if layer.kind != "conv" or len(layer.out_shape) != 4:
        return 1.0, 1.0
    shares = [_taps(layer.out_shape[2 + a], layer.in_shape[2 + a], layer.weight_shape[2 + a],
                    layer.stride[min(a, len(layer.stride) - 1)], layer.padding[min(a, len(layer.padding) - 1)],
                    layer.dilation[min(a, len(layer.dilation) - 1)]) for a in (0, 1)]
    return shares[0][0] * shares[1][0], shares[0][1] * shares[1][1]


def _spatial(layer: Layer) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """(OY, OX, FY, FX, SY, SX, IY, IX) of a conv-like layer, 1-D convolutions as one row."""
    if len(layer.out_shape) == 3:                                    # Conv1d: (N, C, L)
        oy, ox, iy, ix = 1, layer.out_shape[2], 1, layer.in_shape[2]
        fy, fx = 1, layer.weight_shape[-1]
        sy, sx = 1, layer.stride[0]
        dy, dx = 1, layer.dilation[0]
    else:
        oy, ox = layer.out_shape[2], layer.out_shape[3]
        iy, ix = layer.in_shape[2], layer.in_shape[3]
        fy, fx = layer.weight_shape[2], layer.weight_shape[3]
        sy, sx = layer.stride if len(layer.stride) == 2 else layer.stride * 2
        dy, dx = layer.dilation if len(layer.dilation) == 2 else layer.dilation * 2
    # the input one image really needs: rows that some output reads, clipped to the real input
    need_y = min(iy, (oy - 1) * sy + (fy - 1) * dy + 1)
    need_x = min(ix, (ox - 1) * sx + (fx - 1) * dx + 1)
    efy, efx = (fy - 1) * dy + 1, (fx - 1) * dx + 1                 # dilated kernel extent
    return oy, ox, fy, fx, sy, sx, need_y, need_x, efy, efx


def _nests_of(owner: int, layer: Layer, option: Option, batch: int, size: int | None) -> list[tuple]:
    if layer.kind in ("conv", "linear"):
        return _weighted(owner, layer, option, batch, size)
    if option != Option():
        raise ValueError(f"{layer.kind} op {layer.name!r} takes no compression option")
    if layer.kind == "conv_transpose":
        # as a GEMM: every input position times the (K/groups * kh * kw) filter taps it scatters into
        c_in, k_per_group = layer.weight_shape[0], layer.weight_shape[1]
        positions = math.prod(layer.in_shape[2:])
        taps = math.prod(layer.weight_shape[2:])
        return [_row(owner, MAC, batch, layer.groups, k_per_group * taps, c_in // layer.groups, positions, 1,
                     file_bytes=4 * layer.n_weights, out_elems=math.prod(layer.out_shape[1:]))]
    if layer.kind == "matmul":
        n, k = layer.weight_shape
        if len(layer.out_shape) > 2:              # (batch, ..., m, n): the leading dim is the image
            groups = max(1, layer.groups // layer.out_shape[0])
            m = math.prod(layer.out_shape[1:]) // (groups * n)
        else:                                     # (batch, n) or (n,): one row per image
            groups, m = 1, 1
        return [_row(owner, MAC, batch, groups, n, k, m, 1, w_is_activation=True,
                     out_elems=math.prod(layer.out_shape[1:]) if len(layer.out_shape) > 1 else n)]
    if layer.kind == "pool":
        channels = layer.out_shape[1]
        oy = layer.out_shape[2] if len(layer.out_shape) > 2 else 1
        ox = layer.out_shape[3] if len(layer.out_shape) > 3 else 1
        fy = layer.window[0] if layer.window else 1
        fx = layer.window[1] if len(layer.window) > 1 else 1
        iy = layer.in_shape[2] if len(layer.in_shape) > 2 else 1
        ix = layer.in_shape[3] if len(layer.in_shape) > 3 else 1
        return [_row(owner, POOL, batch, channels, 1, 1, oy, ox, fy, fx, IY=iy, IX=ix,
                     in_elems=layer.in_elems // layer.in_shape[0], out_elems=math.prod(layer.out_shape[1:]))]
    per_image_in = layer.in_elems // max(1, layer.in_shape[0]) if layer.in_shape else layer.in_elems
    per_image_out = math.prod(layer.out_shape[1:]) if len(layer.out_shape) > 1 else math.prod(layer.out_shape)
    return [_row(owner, ELEMENTWISE, batch, 1, 1, 1, 1, 1, in_elems=per_image_in, out_elems=per_image_out)]


def _weighted(owner: int, layer: Layer, option: Option, batch: int, size: int | None) -> list[tuple]:
    """Conv and linear layers: one nest per step of the option's structure."""
    if layer.kind == "conv" and len(layer.weight_shape) != 4:
        return _conv1d(owner, layer, option, batch, size)
    geometry = Geometry.of(layer)
    structure = structure_of(geometry, option)
    shapes = factor_shapes(structure)
    total = estimate_layer_nbytes(geometry, option, layer.has_bias) if size is None else int(size)
    per_factor = _split_bytes(total, shapes)
    shared = bool(option.codebook)
    bits = option.codebook if shared else option.bits
    sparse_factor = len(shapes) - 1 if option.method == "lowrank_sparse" and option.density else None
    out_elems = math.prod(layer.out_shape[1:])
    rows = []
    for chain_index, chain in enumerate(structure):
        size_in = _in_extent(layer)
        for step_index, step in enumerate(chain):
            rows_, cols = step.matrix_shape
            if step.factor == sparse_factor:
                kept = geometry.groups * sparse_count(rows_ * cols // geometry.groups, option.density)
            else:
                kept = kept_count(rows_ * cols, option.sparsity)
            last = step_index == len(chain) - 1
            if step.kernel is None:                                   # linear: positions x features
                positions = math.prod(layer.out_shape[1:-1]) if len(layer.out_shape) > 2 else 1
                rows.append(_row(owner, MAC, batch, 1, step.out_channels, step.in_channels, positions, 1,
                                 bits=bits, density=kept / (rows_ * cols), file_bytes=per_factor[step.factor],
                                 out_elems=out_elems if last else step.out_channels * positions, shared=shared))
                continue
            oy, ox, iy, ix, taps, used = _conv_step(size_in, step)
            g = step.groups
            rows.append(_row(owner, MAC, batch, g, step.out_channels // g, step.in_channels // g, oy, ox,
                             step.kernel[0], step.kernel[1], step.stride[0], step.stride[1], iy, ix, bits=bits,
                             density=kept / (rows_ * cols), file_bytes=per_factor[step.factor],
                             out_elems=out_elems if last else step.out_channels * oy * ox, tap_share=taps,
                             weight_share=used, shared=shared))
            size_in = (oy, ox)
    return rows


def _in_extent(layer: Layer) -> tuple[int, int]:
    return (layer.in_shape[2], layer.in_shape[3]) if layer.kind == "conv" else (1, 1)


def _split_bytes(total: int, shapes: list[tuple[int, int]]) -> list[int]:
    """A layer's bytes shared among its factors in proportion to their weights (the first takes the rest)."""
    weights = [r * c for r, c in shapes]
    shares = [total * w // sum(weights) for w in weights]
    shares[0] += total - sum(shares)
    return shares


@lru_cache(maxsize=65536)
def _conv_step(size_in: tuple[int, int], step) -> tuple[int, int, int, int, float, float]:
    """(OY, OX, IY, IX needed, tap share, weight share) of one conv step on a (rows, cols) input."""
    out, need, shares = [], [], []
    for a in (0, 1):
        size, k, s, d = size_in[a], step.kernel[a], step.stride[a], step.dilation[a]
        if isinstance(step.padding, str):
            pad = 0 if step.padding == "valid" else (k - 1) * d // 2
        else:
            pad = step.padding[a]
        o = (size + 2 * pad - d * (k - 1) - 1) // s + 1
        out.append(o)
        need.append(min(size, (o - 1) * s + (k - 1) * d + 1))
        shares.append(_taps(o, size, k, s, pad, d))
    return out[0], out[1], need[0], need[1], shares[0][0] * shares[1][0], shares[0][1] * shares[1][1]


def _conv1d(owner: int, layer: Layer, option: Option, batch: int, size: int | None) -> list[tuple]:
    """A Conv1d priced as one row of a 2-D conv; compression options apply to Conv2d and Linear only."""
    if option != Option():
        raise ValueError(f"conv1d layer {layer.name!r} takes no compression option; hwsearch compresses Conv2d "
                         "and Linear layers")
    oy, ox, fy, fx, sy, sx, iy, ix, _, _ = _spatial(layer)
    file_bytes = 4 * layer.n_weights + (4 * layer.weight_shape[0] if layer.has_bias else 0) if size is None else size
    taps, used = padding_shares(layer)
    return [_row(owner, MAC, batch, layer.groups, layer.weight_shape[0] // layer.groups, layer.weight_shape[1],
                 oy, ox, fy, fx, sy, sx, iy, ix, file_bytes=file_bytes, out_elems=math.prod(layer.out_shape[1:]),
                 tap_share=taps, weight_share=used)]

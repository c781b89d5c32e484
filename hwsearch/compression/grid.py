"""The option grid: which `Option`s the search may choose for one layer.

Kept apart from `hwsearch.compression.options` (the value type every module reads) because it asks the
compression operators which structures a layer can take and whether they save weights.
"""
from __future__ import annotations

import math
from dataclasses import asdict

from hwsearch.compression._base import Geometry, structure_of
from hwsearch.errors import OptionError
from hwsearch.graph import Layer
from hwsearch.compression.options import Option

BITS = (32, 8, 6, 4)                 # 32 means float32; below it, per-output-channel integer codes
SPARSITIES = (0.0, 0.5, 0.75, 0.9)   # fraction of a factor's weights set to zero by magnitude
RANK_FRACTIONS = (1 / 2, 1 / 4, 1 / 8)
GRIDS = ("default", "classic", "full")
CODEBOOK_BITS = (5, 3)               # k-means indices in the default grid (32 and 8 shared weights)
DENSITIES = (0.02, 0.05)             # non-zeros of S in the full grid's low rank plus sparse options


def layer_options(layer: Layer, grid: str = "default") -> list[Option]:
    """Every option for `layer` in `grid` (see README, "The option grid").

    classic: bits x sparsity x rank (truncated SVD), keeping only ranks that save weights,
    the grid of version 1. default: classic, plus k-means codebooks (5 and 3 bits, fp16
    codebook) at every sparsity, data-aware SVD at the same ranks (fp32, 8 and 4 bits), and
    for kxk convolutions Tucker-2 and spatial separation at 1/2 and 1/4 of their ranks (8 and
    4 bits). full: default, plus data-aware Tucker-2 and spatial, codebooks of 8, 6, 4 and 2
    bits (fp32 codebook too) on the factorised layers, and low rank plus sparse fitted to
    feature maps (S at 2% and 5% of the weights); its tables take far longer to compute.
    A rank r saves weights only where the factors hold fewer weights than the layer.
    """
    if grid not in GRIDS:
        raise OptionError(f"option grid must be one of {', '.join(GRIDS)}, got {grid!r}")
    rows, cols = layer.matrix_shape
    ranks = [None] + _ranks(layer, grouped=grid != "classic")
    kg = rows // max(1, layer.groups)
    options = [Option(rank, sparsity, bits) for rank in ranks for sparsity in SPARSITIES for bits in BITS]
    if grid == "classic":
        return options
    options += [Option(sparsity=s, bits=b, codebook=16) for s in SPARSITIES for b in CODEBOOK_BITS]
    options += [Option(rank=r, bits=b, data_aware=True) for r in ranks[1:] for b in (32, 8, 4)]
    spatial_kernel = layer.kind == "conv" and len(layer.weight_shape) == 4 and min(layer.weight_shape[2:]) > 1
    structured: list[Option] = []
    if spatial_kernel:
        cg, kh, kw = layer.weight_shape[1:]
        for fraction in (1 / 2, 1 / 4):
            r_in = max(1, round(min(cg, kg * kh * kw) * fraction))
            r_out = max(1, round(min(kg, cg * kh * kw) * fraction))
            r_sp = max(1, round(min(cg * kh, kw * kg) * fraction))
            structured += [Option(method="tucker2", rank=r_in, rank_out=r_out),
                           Option(method="spatial", rank=r_sp)]
    options += [_with(o, bits=b) for o in structured for b in (8, 4) if saves_weights(layer, o)]
    if grid == "default":
        return options
    options += [_with(o, data_aware=True, bits=b) for o in structured for b in (32, 8) if saves_weights(layer, o)]
    options += [Option(sparsity=s, bits=b, codebook=c) for s in SPARSITIES for b in (8, 6, 4, 2) for c in (16, 32)]
    options += [Option(rank=r, bits=b, codebook=16, data_aware=True) for r in ranks[1:] for b in (6, 4)]
    options += [Option(method="lowrank_sparse", rank=max(1, r // 2), density=d, data_aware=True, bits=8)
                for r in ranks[1:] for d in DENSITIES
                if saves_weights(layer, Option(method="lowrank_sparse", rank=max(1, r // 2), density=d))]
    return list(dict.fromkeys(options))


def _ranks(layer: Layer, *, grouped: bool) -> list[int]:
    """Ranks of 1/2, 1/4 and 1/8 of each group's full rank that save weights: G r (K/G + n) < K n.
    Grouped convs (factorised per group) only when `grouped`: the classic grid kept them whole."""
    rows, cols = layer.matrix_shape
    groups = max(1, layer.groups)
    if groups > 1 and not grouped:
        return []
    out: list[int] = []
    for fraction in RANK_FRACTIONS:
        rank = max(1, round(min(rows // groups, cols) * fraction))
        if groups * rank * (rows // groups + cols) < rows * cols and rank not in out:
            out.append(rank)
    return out


def _with(option: Option, **changes) -> Option:
    return Option(**{**asdict(option), **changes})


def saves_weights(layer: Layer, option: Option) -> bool:
    """Whether `option`'s factors hold fewer weights than the layer (before pruning and quantization),
    counting S's kept weights only; False where the layer cannot take it."""
    try:
        structure = structure_of(Geometry.of(layer), option)
    except OptionError:
        return False
    held = 0
    for chain in structure:
        for step in chain:
            numel = math.prod(step.matrix_shape)
            dense_copy = option.method == "lowrank_sparse" and len(chain) == 1
            held += round(option.density * numel) if dense_copy else numel
    return held < layer.n_weights

"""Candidate configurations: what one layer may become.

An `Option` is a small frozen value that round-trips through JSON; a plan maps layer
names to options. `layer_options` lists the grid the search chooses from per layer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from hwsearch.layer_graph import Layer

OPTION_VERSION = 1
BITS = (32, 8, 6, 4)                 # 32 means float32; below it, per-output-channel integer codes
SPARSITIES = (0.0, 0.5, 0.75, 0.9)   # fraction of a factor's weights set to zero by magnitude
RANK_FRACTIONS = (1 / 2, 1 / 4, 1 / 8)


@dataclass(frozen=True)
class Option:
    rank: int | None = None   # None: keep full rank; r: W (K x n) becomes (K x r)(r x n)
    sparsity: float = 0.0     # fraction of each factor's weights set to zero
    bits: int = 32            # weight bits; 32 means float32

    def __post_init__(self):
        if self.rank is not None and self.rank < 1:
            raise ValueError(f"rank must be >= 1 or None, got {self.rank}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.bits != 32 and not 2 <= self.bits <= 16:
            raise ValueError(f"bits must be 32 (float) or between 2 and 16, got {self.bits}")

    @property
    def label(self) -> str:
        """Short stable name, e.g. `r64-s0.5-b4`; `fp32` for the untouched layer."""
        parts = ([f"r{self.rank}"] if self.rank else []) + ([f"s{self.sparsity:g}"] if self.sparsity else [])
        parts.append(f"b{self.bits}" if self.bits != 32 else "fp32")
        return "-".join(parts)

    def to_dict(self) -> dict:
        return {"version": OPTION_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "Option":
        data = dict(data)
        version = data.pop("version", OPTION_VERSION)
        if version != OPTION_VERSION:
            raise ValueError(f"option version {version} is not supported (this hwsearch writes {OPTION_VERSION})")
        return cls(**data)


Plan = dict[str, Option]


def layer_options(layer: Layer) -> list[Option]:
    """Every option for `layer`: bits x sparsity x rank, keeping only ranks that save weights.

    A rank r saves weights only if r * (K + n) < K * n; grouped convolutions keep full
    rank (a channel factorisation would have to be done per group).
    """
    rows, cols = layer.matrix_shape
    ranks: list[int | None] = [None]
    if layer.groups == 1:
        full = min(rows, cols)
        for fraction in RANK_FRACTIONS:
            rank = max(1, round(full * fraction))
            if rank * (rows + cols) < rows * cols and rank not in ranks:
                ranks.append(rank)
    return [Option(rank, sparsity, bits) for rank in ranks for sparsity in SPARSITIES for bits in BITS]

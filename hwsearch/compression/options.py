"""Candidate configurations: what one layer may become.

An `Option` is a small frozen value that round-trips through JSON; a plan maps layer
names to options. The grid the search chooses from per layer is `hwsearch.compression.grid`.

    Option()                                   # the layer as it is (fp32)
    Option(rank=16, bits=4)                    # truncated SVD, 4-bit per-row codes
    Option(sparsity=0.9, bits=5, codebook=16)  # pruned, 32 shared weights (k-means), fp16 codebook
    Option(method="tucker2", rank=8, rank_out=16, data_aware=True)
    Option(method="lowrank_sparse", rank=4, density=0.05)

Version 2 added `method` and the fields after it; version-1 dicts (rank, sparsity, bits)
still load, as the option they always meant (`svd` when ranked, else `dense`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from hwsearch.errors import OptionError

OPTION_VERSION = 2
METHODS = ("dense", "svd", "tucker2", "spatial", "lowrank_sparse")
INITS = ("linear", "forgy", "density")      # k-means centroid initialisation (Han et al. 2016, section 3.2)
_SHORT = {"tucker2": "t2", "spatial": "sp", "lowrank_sparse": "ls"}


@dataclass(frozen=True)
class Option:
    rank: int | None = None       # svd, spatial: r; tucker2: r_in; lowrank_sparse: rank of L (0: no L)
    sparsity: float = 0.0         # fraction of each factor's weights set to zero by magnitude
    bits: int = 32                # weight bits; 32 means float32; with a codebook, bits of each index
    method: str | None = None     # one of METHODS; None: "svd" when ranked, else "dense" (version 1)
    rank_out: int | None = None   # tucker2: r_out, the core's output channels
    density: float = 0.0          # lowrank_sparse: non-zeros of S as a share of the layer's weights
    codebook: int = 0             # 0: uniform per-row codes; 16 or 32: 2^bits shared weights stored at that width
    init: str = "linear"          # k-means centroid initialisation: linear, forgy or density
    data_aware: bool = False      # fit to the layer's output feature maps on calibration inputs, not its weights

    def __post_init__(self):
        if self.method is None:
            object.__setattr__(self, "method", "svd" if self.rank else "dense")
        object.__setattr__(self, "sparsity", float(self.sparsity))
        object.__setattr__(self, "density", float(self.density))
        problems = list(self._problems())
        if problems:
            raise OptionError(f"invalid option {self._raw()}: " + "; ".join(problems))

    def _problems(self):
        m = self.method
        if m not in METHODS:
            yield f"method must be one of {', '.join(METHODS)}, got {m!r}"
            return
        if m == "dense" and self.rank is not None:
            yield "a dense option has no rank; pass method='svd' (or another low-rank method) with a rank"
        if m in ("svd", "spatial", "tucker2") and (self.rank is None or self.rank < 1):
            yield f"rank must be >= 1 for method {m!r}, got {self.rank}"
        if m == "tucker2" and (self.rank_out is None or self.rank_out < 1):
            yield f"tucker2 needs rank_out >= 1 (the core's output channels), got {self.rank_out}"
        if m != "tucker2" and self.rank_out is not None:
            yield f"rank_out is for tucker2 only, got rank_out={self.rank_out} with method {m!r}"
        if m == "lowrank_sparse":
            if self.rank is None or self.rank < 0:
                yield f"lowrank_sparse needs rank >= 0 (0: sparse part only), got {self.rank}"
            if not 0.0 <= self.density < 1.0:
                yield f"density must be in [0, 1), got {self.density}"
            if not self.rank and self.density == 0.0:
                yield "lowrank_sparse needs rank > 0 or density > 0 (both 0 leave no weights)"
            if self.sparsity:
                yield "lowrank_sparse keeps its sparse part in S (density); set sparsity=0"
        elif self.density:
            yield f"density is for lowrank_sparse only, got density={self.density} with method {m!r}"
        if not 0.0 <= self.sparsity < 1.0:
            yield f"sparsity must be in [0, 1), got {self.sparsity}"
        if self.bits != 32 and not 2 <= self.bits <= 16:
            yield f"bits must be 32 (float) or between 2 and 16, got {self.bits}"
        if self.codebook not in (0, 16, 32):
            yield f"codebook must be 0 (uniform codes), 16 or 32 (bits per shared weight), got {self.codebook}"
        if self.codebook and not 2 <= self.bits <= 8:
            yield f"a codebook indexes 2^bits shared weights with bits from 2 to 8, got bits={self.bits}"
        if self.init not in INITS:
            yield f"init must be one of {', '.join(INITS)}, got {self.init!r}"
        if self.init != "linear" and not self.codebook:
            yield f"init={self.init!r} chooses k-means centroids; it needs a codebook (16 or 32)"
        if self.data_aware and m == "dense":
            yield "a dense option has nothing to fit to feature maps; data_aware needs a low-rank method"

    def _raw(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))

    @property
    def label(self) -> str:
        """Short stable name, e.g. `r64-s0.5-b4`, `t2-r8x16-k5c16-data`; `fp32` for the untouched layer."""
        parts = []
        if self.method == "tucker2":
            parts.append(f"t2-r{self.rank}x{self.rank_out}")
        elif self.method in ("spatial", "lowrank_sparse"):
            parts.append(f"{_SHORT[self.method]}-r{self.rank}")
        elif self.rank:
            parts.append(f"r{self.rank}")
        if self.density:
            parts.append(f"d{self.density:g}")
        if self.sparsity:
            parts.append(f"s{self.sparsity:g}")
        if self.codebook:
            parts.append(f"k{self.bits}c{self.codebook}" + ("" if self.init == "linear" else f"-{self.init}"))
        else:
            parts.append(f"b{self.bits}" if self.bits != 32 else "fp32")
        if self.data_aware:
            parts.append("data")
        return "-".join(parts)

    @property
    def factorised(self) -> bool:
        return self.method != "dense"

    def to_dict(self) -> dict:
        return {"version": OPTION_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "Option":
        data = dict(data)
        version = data.pop("version", 1)
        if version == 1:
            unknown = set(data) - {"rank", "sparsity", "bits"}
            if unknown:
                raise OptionError(f"a version-1 option has only rank, sparsity and bits, got {sorted(unknown)}; "
                                  "write version 2 to use the other fields")
            return cls(**data)
        if version != OPTION_VERSION:
            raise OptionError(f"option version {version} is not supported: this hwsearch reads versions 1 and "
                              f"{OPTION_VERSION}; write the plan again with this hwsearch")
        return cls(**data)


Plan = dict[str, Option]

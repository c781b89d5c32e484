"""The cost-model interface: price one layer under one option on one target."""
from __future__ import annotations

import abc
from dataclasses import dataclass, fields

from hwsearch.layer_graph import Layer
from hwsearch.options import Option


@dataclass(frozen=True)
class Cost:
    """What one layer costs for one inference (batch 1). Units are in the names."""
    macs: int
    weight_bytes: int       # bytes the layer takes in the compressed file
    dram_bytes: int         # bytes moved between DRAM and the chip
    sram_bytes: int         # bytes moved into the innermost on-chip memory
    latency_s: float
    energy_j: float

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


class CostModel(abc.ABC):
    """Prices one layer under one option on one target. Pure: same inputs, same Cost."""

    @abc.abstractmethod
    def layer_cost(self, layer: Layer, option: Option) -> Cost:
        """Cost of `layer` compressed with `option` (seconds, joules, bytes)."""

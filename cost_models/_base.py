"""The cost-model interface: price layers under options on one target.

`CostModel.price` takes many (layer, option) pairs at once and returns `Costs`, one
row per pair, so that an implementation can vectorise (the analytical model) or batch
and cache (a simulator). `Cost` is one row, for people and tests.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from hwsearch.graph import Layer
from hwsearch.compression import Option

from cost_models.target import Target


@dataclass(frozen=True)
class Cost:
    """What one layer costs for one inference on the target. Units are in the names."""
    macs: int                       # multiply-accumulates the hardware executes
    weight_bytes: int               # bytes the layer takes in the compressed file
    latency_s: float
    energy_j: float
    bottleneck: str                 # "compute", "overhead" or the memory level that bounds latency
    reads: dict[str, float] = field(default_factory=dict)    # bytes read at each level, "dram" last
    writes: dict[str, float] = field(default_factory=dict)   # bytes written at each level
    energy_parts_j: dict[str, float] = field(default_factory=dict)   # "mac", then one entry per level

    @property
    def dram_bytes(self) -> float:
        return self.reads.get("dram", 0.0) + self.writes.get("dram", 0.0)


@dataclass(frozen=True)
class Costs:
    """Costs of many (layer, option) pairs: one array entry per pair."""
    levels: tuple[str, ...]         # memory level names, innermost first, "dram" last
    macs: np.ndarray
    weight_bytes: np.ndarray
    latency_s: np.ndarray
    energy_j: np.ndarray
    bottleneck: np.ndarray          # index into ("compute", "overhead", *levels)
    reads: np.ndarray               # (pairs, levels) bytes
    writes: np.ndarray
    energy_parts_j: np.ndarray      # (pairs, 1 + levels): MACs, then each level
    resident_bytes: np.ndarray      # bytes the weights take in memory at run time (file encoding or dense)
    activation_bytes: np.ndarray    # width of the activations the pair reads and writes

    def __len__(self) -> int:
        return len(self.macs)

    @property
    def bottleneck_names(self) -> tuple[str, ...]:
        return ("compute", "overhead", *self.levels)

    def row(self, i: int) -> Cost:
        return Cost(int(round(self.macs[i])), int(self.weight_bytes[i]), float(self.latency_s[i]),
                    float(self.energy_j[i]), self.bottleneck_names[int(self.bottleneck[i])],
                    dict(zip(self.levels, self.reads[i].tolist())), dict(zip(self.levels, self.writes[i].tolist())),
                    dict(zip(("mac", *self.levels), self.energy_parts_j[i].tolist())))

    def columns(self) -> dict[str, np.ndarray]:
        """Flat named columns: the figures the cost table keeps per (layer, option)."""
        traffic = self.reads + self.writes
        out = {"weight_bytes": self.weight_bytes, "macs": self.macs, "latency_s": self.latency_s,
               "energy_j": self.energy_j, "dram_bytes": traffic[:, -1], "resident_bytes": self.resident_bytes}
        for j, level in enumerate(self.levels[:-1]):
            out[f"{level}_bytes"] = traffic[:, j]
        return out


def weights_stay_on_chip(target: Target, weight_bytes: float, largest_activations_bytes: float) -> bool:
    """Whether a model's weights stay in the last on-chip level between inferences: they fit there,
    beside the largest layer's input and output."""
    return weight_bytes + largest_activations_bytes <= target.memory[-1].capacity_bytes


class CostModel(abc.ABC):
    """Prices layers under compression options on one target. Pure: same inputs, same Costs.

    Implementations: `AnalyticalCostModel` (the inner loop), `ZigZagCostModel` (a
    simulator that confirms accelerator figures). A Timeloop backend would implement
    `price` the same way and register in `cost_models.BACKENDS`.
    """

    def __init__(self, target: Target, *, batch: int = 1, warm: bool = False):
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.target = target
        self.batch = batch
        # warm: the weights are still in the last on-chip level from the previous inference, which happens
        # when the whole model fits there (`weights_stay_on_chip`); cold: they stream in from DRAM
        self.warm = warm

    @abc.abstractmethod
    def price(self, pairs: Sequence[tuple[Layer, Option]], *, sizes: Sequence[int | None] | None = None) -> Costs:
        """Costs of every (layer, option) pair for one inference of `batch` images.

        `sizes[i]`: the exact bytes pair i's layer takes in the file, measured on its fitted
        factors (sparse positions and codebook indices are data-dependent); None, or no
        `sizes`: the estimate from shapes, an upper bound (`hwsearch.compression.estimate_layer_nbytes`).
        """

    def layer_cost(self, layer: Layer, option: Option = Option()) -> Cost:
        """Cost of one layer under one option (convenience for people and tests)."""
        return self.price([(layer, option)]).row(0)

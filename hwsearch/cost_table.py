"""Costs of every (layer, option) on the target, and of a whole plan.

A trial only adds table entries. Whole-model terms are added at aggregation: the file's
fixed bytes (header, dense tensors, checksum).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cost_models import CostModel
from hwsearch.layer_graph import Layer
from hwsearch.options import Option

COLUMNS = ("weight_bytes", "macs", "dram_bytes", "sram_bytes", "latency_s", "energy_j")


@dataclass(frozen=True)
class CostTable:
    """values[layer name][i, j]: column COLUMNS[j] of option i; fixed_bytes: the file's plan-independent bytes."""
    values: dict[str, np.ndarray]
    fixed_bytes: int

    def column(self, name: str, column: str) -> np.ndarray:
        return self.values[name][:, COLUMNS.index(column)]

    def totals(self, choice: dict[str, int]) -> dict[str, float]:
        """Whole-model figures of a plan given as option indices; `size_bytes` is the exact file size."""
        total = sum(self.values[name][index] for name, index in choice.items())
        out = dict(zip(COLUMNS, total.tolist()))
        out["size_bytes"] = int(out.pop("weight_bytes")) + self.fixed_bytes
        return out


def build_cost_table(cost_model: CostModel, layers: list[Layer], options: dict[str, list[Option]],
                     fixed_bytes: int) -> CostTable:
    values = {}
    for layer in layers:
        costs = [cost_model.layer_cost(layer, option) for option in options[layer.name]]
        # float64 holds byte counts exactly up to 2**53
        values[layer.name] = np.array([[getattr(c, col) for col in COLUMNS] for c in costs], dtype=np.float64)
    return CostTable(values, fixed_bytes)

"""Costs of every (layer, option) on the target, and of a whole plan.

A trial only adds table entries. Whole-model terms are added at aggregation: the file's
fixed bytes (header, dense tensors, checksum) and the ops no option changes (pooling,
residual adds, attention products between activations, transposed convolutions).
All (layer, option) pairs are priced in one vectorised call of the cost model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cost_models import CostModel
from hwsearch.layer_graph import Layer
from hwsearch.options import Option


@dataclass(frozen=True)
class CostTable:
    """values[layer name][i, j]: column columns[j] of option i; fixed: the plan-independent totals."""
    columns: tuple[str, ...]
    values: dict[str, np.ndarray]
    fixed: np.ndarray          # the same columns summed over the ops no option changes
    fixed_bytes: int           # the file's plan-independent bytes

    def column(self, name: str, column: str) -> np.ndarray:
        return self.values[name][:, self.columns.index(column)]

    def totals(self, choice: dict[str, int]) -> dict[str, float]:
        """Whole-model figures of a plan given as option indices; `size_bytes` is the exact file size."""
        total = self.fixed + sum(self.values[name][index] for name, index in choice.items())
        out = dict(zip(self.columns, total.tolist()))
        out["size_bytes"] = int(out.pop("weight_bytes")) + self.fixed_bytes
        return out


def build_cost_table(cost_model: CostModel, layers: list[Layer], options: dict[str, list[Option]],
                     fixed_bytes: int, fixed_ops: list[Layer] = ()) -> CostTable:
    """Price every option of every compressible layer, and the fixed ops once."""
    pairs = [(layer, option) for layer in layers for option in options[layer.name]]
    priced = cost_model.price(pairs + [(op, Option()) for op in fixed_ops]).columns()
    columns = tuple(priced)
    # float64 holds byte counts exactly up to 2**53
    matrix = np.column_stack([priced[c] for c in columns]).astype(np.float64)
    values, start = {}, 0
    for layer in layers:
        stop = start + len(options[layer.name])
        values[layer.name] = matrix[start:stop]
        start = stop
    fixed = matrix[start:].sum(axis=0)
    fixed[columns.index("weight_bytes")] = 0.0      # their weights are among the file's fixed bytes
    return CostTable(columns, values, fixed, fixed_bytes)

"""Costs of every (layer, option) on the target, and of a whole plan.

A trial only adds table entries. Three whole-model terms are added at aggregation,
because no single layer knows them:

- the ops no option changes (pooling, residual adds, products between activations)
  and the file's fixed bytes (header, dense tensors, checksum);
- whether the weights stay on chip between inferences: a plan whose weights (as the
  runtime holds them) fit in the last on-chip level beside the largest layer's maps
  finds them there on the next inference (warm); one that does not streams them from
  DRAM (cold); in between, the share that fits is warm;
- conversions: where a layer on an int8 path meets one on a float path (or the model's
  input and output), the activation is quantised or dequantised on the way, which costs
  `target.conversion_passes` elementwise passes over it. Ops no option changes run at
  the narrow width when everything around them does (as QDQ runtimes fuse them).

All (layer, option) pairs are priced in one vectorised call of the cost model per mode.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cost_models._base import CostModel
from hwsearch.graph import Layer, LayerGraph
from hwsearch.compression import Option


@dataclass(frozen=True)
class CostTable:
    """values[layer name][i, j]: column columns[j] of option i with cold weights; warm[...]: with warm ones."""
    columns: tuple[str, ...]
    values: dict[str, np.ndarray]
    warm: dict[str, np.ndarray]
    fixed: np.ndarray                 # the ops no option changes, cold
    fixed_warm: np.ndarray
    fixed_bytes: int                  # the file's plan-independent bytes
    room_bytes: float                 # last on-chip level minus the largest layer's maps
    fixed_resident: float             # weights of the fixed ops as the runtime holds them
    widths: dict[str, np.ndarray] = field(default_factory=dict)   # activation bytes per option
    edges: tuple[tuple[str, str, int], ...] = ()                  # (producer, consumer, edge index)
    conversion: np.ndarray | None = None                          # (edges, columns): one width change each
    fixed_names: frozenset[str] = frozenset()
    float_width: float = 4.0
    mixed_float_penalty: float = 0.0

    def column(self, name: str, column: str) -> np.ndarray:
        return self.values[name][:, self.columns.index(column)]

    def totals(self, choice: dict[str, int]) -> dict[str, float]:
        """Whole-model figures of a plan given as option indices; `size_bytes` is the exact file size."""
        cold = self.fixed + sum(self.values[name][index] for name, index in choice.items())
        hot = self.fixed_warm + sum(self.warm[name][index] for name, index in choice.items())
        resident = cold[self.columns.index("resident_bytes")] + self.fixed_resident
        share = 1.0 if resident <= 0 else float(np.clip(self.room_bytes / resident, 0.0, 1.0))
        total = (1 - share) * cold + share * hot
        if self.conversion is not None:
            total = total + self._conversions(choice)
        out = dict(zip(self.columns, total.tolist()))
        out["size_bytes"] = int(round(cold[self.columns.index("weight_bytes")])) + self.fixed_bytes
        out["resident_bytes"] = resident
        out["warm_share"] = share
        return out

    def _conversions(self, choice: dict[str, int]) -> np.ndarray:
        width = {name: float(self.widths[name][index]) for name, index in choice.items()}
        narrowest = min(width.values(), default=self.float_width)
        # an op no option changes runs narrow when every costed op around it does
        neighbours: dict[str, set[str]] = {}
        for producer, consumer, _ in self.edges:
            neighbours.setdefault(producer, set()).add(consumer)
            neighbours.setdefault(consumer, set()).add(producer)
        narrow = {name for name in self.fixed_names
                  if all(width.get(n, narrowest if n in self.fixed_names else self.float_width) == narrowest
                         for n in neighbours.get(name, ()))}
        changed = True
        while changed:
            changed = False
            for name in list(narrow):
                if any(n in self.fixed_names and n not in narrow for n in neighbours.get(name, ())):
                    narrow.discard(name)
                    changed = True
        for name in self.fixed_names:
            width[name] = narrowest if name in narrow else self.float_width
        total = np.zeros(len(self.columns))
        beside = set()
        for producer, consumer, index in self.edges:
            if width.get(producer, self.float_width) != width.get(consumer, self.float_width):
                total += self.conversion[index]
                beside.update((producer, consumer))
        if self.mixed_float_penalty:
            for name in beside & choice.keys():
                if width[name] == self.float_width:
                    total += self.mixed_float_penalty * self.values[name][choice[name]]
        return total


def build_cost_table(cost_model: CostModel, layers: list[Layer], options: dict[str, list[Option]],
                     fixed_bytes: int, graph: LayerGraph | None = None,
                     sizes: dict[str, np.ndarray] | None = None) -> CostTable:
    """Price every option of every compressible layer, and the fixed ops, cold and warm.

    `sizes[layer][i]`: the exact bytes option i takes in the file (`ProxyTable.sizes`, measured
    on the fitted option); without them, bytes are estimated from shapes (an upper bound
    wherever sparse positions or codebook indices are coded by their data).
    """
    target = cost_model.target
    fixed_ops = graph.fixed_ops(fused=not target.fuses_activations) if graph is not None else []
    pairs = [(layer, option) for layer in layers for option in options[layer.name]]
    measured = None
    if sizes:
        measured = [int(sizes[layer.name][i]) if layer.name in sizes else None
                    for layer in layers for i in range(len(options[layer.name]))]
        measured += [None] * len(fixed_ops)
    pairs += [(op, Option()) for op in fixed_ops]
    warm_model = type(cost_model)(target, batch=cost_model.batch, warm=True)
    priced = {mode: model.price(pairs, sizes=measured) for mode, model in (("cold", cost_model), ("warm", warm_model))}
    columns = tuple(priced["cold"].columns())
    matrix = {mode: np.column_stack([c.columns()[k] for k in columns]).astype(np.float64)   # exact to 2**53
              for mode, c in priced.items()}
    values, warm, widths, start = {}, {}, {}, 0
    for layer in layers:
        stop = start + len(options[layer.name])
        values[layer.name], warm[layer.name] = matrix["cold"][start:stop], matrix["warm"][start:stop]
        widths[layer.name] = priced["cold"].activation_bytes[start:stop]
        start = stop
    weight_column = columns.index("weight_bytes")
    fixed, fixed_warm = matrix["cold"][start:].sum(axis=0), matrix["warm"][start:].sum(axis=0)
    fixed_resident = float(fixed[columns.index("resident_bytes")])
    fixed[weight_column] = fixed_warm[weight_column] = 0.0     # their weights are among the file's fixed bytes
    fixed[columns.index("resident_bytes")] = fixed_warm[columns.index("resident_bytes")] = 0.0
    float_width = float(max(c.activation_bytes for c in target.compute))
    ops = list(layers) + list(fixed_ops)
    largest = max((float_width * (math.prod(op.in_shape[1:]) + math.prod(op.out_shape[1:])) * cost_model.batch
                   for op in ops), default=0.0)
    room = max(0.0, target.memory[-1].capacity_bytes - largest)
    table = CostTable(columns, values, warm, fixed, fixed_warm, fixed_bytes, room, fixed_resident, widths)
    if graph is None or len({c.activation_bytes for c in target.compute}) < 2 or target.conversion_passes == 0:
        return table
    edges = graph.activation_edges()
    conversion = _conversion_costs(cost_model, edges, columns, target.conversion_passes)
    return CostTable(columns, values, warm, fixed, fixed_warm, fixed_bytes, room, fixed_resident, widths,
                     tuple((p, c, i) for i, (p, c, _) in enumerate(edges)), conversion,
                     frozenset(op.name for op in fixed_ops), float_width, target.mixed_float_penalty)


def _conversion_costs(cost_model: CostModel, edges, columns: tuple[str, ...], passes: float) -> np.ndarray:
    """What changing the width of each edge's activation costs: `passes` elementwise passes over it."""
    ops = [Layer(f"convert {p}->{c}", "elementwise", (), (1, elems), (1, elems), compressible=False, in_elems=elems)
           for p, c, elems in edges]
    priced = cost_model.price([(op, Option()) for op in ops]).columns()
    matrix = np.column_stack([priced[k] for k in columns]).astype(np.float64)
    matrix[:, columns.index("weight_bytes")] = 0.0
    return passes * matrix


def plan_costs(cost_model: CostModel, graph: LayerGraph, plan: dict[str, Option], fixed_bytes: int = 0) -> dict:
    """Whole-model figures of one plan (every compressible layer named in `plan`)."""
    layers = graph.compressible()
    options = {layer.name: [plan.get(layer.name, Option())] for layer in layers}
    table = build_cost_table(cost_model, layers, options, fixed_bytes, graph)
    return table.totals({layer.name: 0 for layer in layers})

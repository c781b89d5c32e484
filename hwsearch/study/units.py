"""Search units: what the study picks one option for. A layer, or a channel group pruned as one.

Removing a group's channels (`compress.channels`) shrinks its producers and its consumers
at once, so one layer's choice changes another's shape, bytes and cost: per-layer tables
would no longer add up. The group's layers become one unit of the search, keyed
`producer+...+consumer`, whose options are

- every combination of its layers' own options (each layer's non-dominated ones, all on the
  same activation width so that the unit has one width for the conversion terms): errors,
  bytes and costs summed, exactly what the layers cost on their own;
- structured prunings: keep 3/4 or 1/2 of the channels, chosen by l1 norm or by
  reconstruction, then one option for all the unit's layers, fitted, measured and priced on
  the pruned layers (the bytes include the channel record the file keeps).

Every unit option's bytes are measured on its fitted layers, so the size table stays exact
and separable over units; the study, the exact solver and the repair need no change.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hwsearch.compression import Option, capture_inputs, compress, layer_nbytes
from hwsearch.compression.channels import (CRITERIA, ChannelGroup, UnitOption, channel_groups, disjoint_groups,
                                        member_inputs, prune_unit_)
from hwsearch.compression.encoding import channel_record_nbytes
from cost_models import CostTable
from hwsearch.graph import Layer, LayerGraph
from hwsearch.proxy import ProxyTable

KEEP_FRACTIONS = (0.75, 0.5)
PRUNED_OPTIONS = (Option(), Option(bits=8), Option(bits=6))
_SEPARABLE = ("weight_bytes", "latency_s", "energy_j")


@dataclass(frozen=True)
class Unit:
    key: str
    group: ChannelGroup


def search_units(model: nn.Module, graph: LayerGraph) -> list[Unit]:
    """One unit per prunable channel group, no two sharing a layer."""
    return [Unit("+".join(g.layers), g) for g in disjoint_groups(channel_groups(model, graph))]


def baseline_index(options: list) -> int:
    """Index of the option that leaves a layer (or every layer of a unit) as it is."""
    for i, option in enumerate(options):
        if option == Option() or (isinstance(option, UnitOption) and option.keep is None
                                  and all(o == Option() for o in option.members)):
            return i
    raise ValueError("no option leaves the layer as it is")


@torch.no_grad()
def merge_units(model: nn.Module, layers: list[Layer], units: list[Unit], proxy: ProxyTable, costs: CostTable,
                cost_model, calibration: torch.Tensor, progress=None) -> tuple[ProxyTable, CostTable]:
    """The per-layer tables with each unit's layers replaced by the unit (see the module docstring)."""
    by_name = {layer.name: layer for layer in layers}
    in_unit = {name: unit.key for unit in units for name in unit.group.layers}
    options, errors, sizes, scores = {}, {}, {}, {}
    values, warm, widths = {}, {}, {}
    names = [l.name for l in layers if l.name not in in_unit]
    for name in names:
        options[name], errors[name], sizes[name] = proxy.options[name], proxy.errors[name], proxy.sizes[name]
        scores[name] = proxy.scores[name]
        values[name], warm[name], widths[name] = costs.values[name], costs.warm[name], costs.widths[name]
    inputs = capture_inputs(model, list(in_unit), calibration)
    task = progress.add_task("channel pruning", total=len(units)) if progress else None
    for unit in units:
        rows = _combinations(unit, proxy, costs)
        rows += _prunings(model, unit, by_name, inputs, cost_model, costs.columns, proxy.sensitivity)
        options[unit.key] = [r[0] for r in rows]
        errors[unit.key] = np.array([r[1] for r in rows])
        sizes[unit.key] = np.array([r[2] for r in rows], dtype=np.int64)
        values[unit.key] = np.stack([r[3] for r in rows])
        warm[unit.key] = np.stack([r[4] for r in rows])
        widths[unit.key] = np.array([r[5] for r in rows])
        scores[unit.key] = np.array([r[6] for r in rows])
        if progress:
            progress.advance(task)
    if progress:
        progress.remove_task(task)
    order = [in_unit.get(l.name, l.name) for l in layers]
    keys = list(dict.fromkeys(order))
    edges = tuple((in_unit.get(p, p), in_unit.get(c, c), i) for p, c, i in costs.edges
                  if in_unit.get(p, p) != in_unit.get(c, c))
    table = dataclasses.replace(costs, values={k: values[k] for k in keys}, warm={k: warm[k] for k in keys},
                                widths={k: widths[k] for k in keys}, edges=edges)
    weighted = {k: scores[k] for k in keys} if proxy.sensitivity is not None else None
    return ProxyTable({k: options[k] for k in keys}, {k: errors[k] for k in keys}, {k: sizes[k] for k in keys},
                      unit_scores=weighted), table


def _combinations(unit: Unit, proxy: ProxyTable, costs: CostTable) -> list[tuple]:
    """The unit's layers each on one of its own options, at one activation width, non-dominated.

    Built one layer at a time, keeping after each the combinations no other beats on the error and
    every separable cost (a dominated partial sum stays dominated whatever the next layer adds), so
    three-layer units stay small; the all-fp32 combination is kept and comes first.
    """
    from hwsearch.study.space import non_dominated_all
    columns = [costs.columns.index(c) for c in _SEPARABLE]
    names = unit.group.layers
    baseline = tuple(proxy.options[n].index(Option()) for n in names)
    rows = []
    for width in sorted({float(w) for n in names for w in costs.widths[n]}):
        combos = [()]
        for depth, name in enumerate(names):
            choices = [i for i in range(len(proxy.options[name])) if float(costs.widths[name][i]) == width]
            combos = [c + (i,) for c in combos for i in choices]
            if not combos:
                break
            names_so_far = names[:depth + 1]
            errors = np.array([sum(proxy.scores[n][i] for n, i in zip(names_so_far, c)) for c in combos])
            points = np.array([sum(costs.values[n][i][columns] for n, i in zip(names_so_far, c)) for c in combos])
            keep = set(non_dominated_all(errors, points))
            combos = [c for j, c in enumerate(combos) if j in keep or c == baseline[:depth + 1]]
        for combo in combos:
            option = UnitOption(unit.group, tuple(proxy.options[n][i] for n, i in zip(names, combo)))
            rows.append((combo == baseline, option, sum(float(proxy.errors[n][i]) for n, i in zip(names, combo)),
                         sum(int(proxy.sizes[n][i]) for n, i in zip(names, combo)),
                         sum(costs.values[n][i] for n, i in zip(names, combo)),
                         sum(costs.warm[n][i] for n, i in zip(names, combo)), width,
                         sum(float(proxy.scores[n][i]) for n, i in zip(names, combo))))
    rows.sort(key=lambda r: not r[0])                 # the unchanged layers first
    return [r[1:] for r in rows]


def _prunings(model: nn.Module, unit: Unit, by_name: dict[str, Layer], inputs: dict[str, torch.Tensor],
              cost_model, columns: tuple[str, ...], sensitivity: dict[str, float] | None) -> list[tuple]:
    """Structured prunings of the unit, each layer then on one of PRUNED_OPTIONS, fitted and priced;
    scored like the layers' own options (sensitivity-weighted squared errors, or plain errors)."""
    group, rows = unit.group, []
    reference = {name: model.get_submodule(name)(inputs[name]) for name in group.layers}   # original outputs
    warm_model = type(cost_model)(cost_model.target, batch=cost_model.batch, warm=True)
    for criterion in CRITERIA:
        for fraction in KEEP_FRACTIONS:
            keep = max(1, round(fraction * group.channels))
            holder = _holder(model, group)
            choice = prune_unit_(holder, UnitOption(group, (Option(),) * len(group.layers), keep, criterion), inputs)
            kept = torch.tensor(choice.kept)
            for option in PRUNED_OPTIONS:
                error, score, size, pairs = 0.0, 0.0, [], []
                for index, name in enumerate(group.layers):
                    module = holder.get_submodule(name)
                    x = member_inputs(choice, name, inputs[name])
                    layer = compress(module, option, inputs=x)
                    y = reference[name]
                    target = y if name in (c for c, _, _ in group.consumers) else y.index_select(
                        1 if y.dim() == 4 else y.dim() - 1, kept)
                    relative = float((target - layer(x)).norm() / y.norm().clamp_min(1e-12))
                    error += relative
                    score += relative if sensitivity is None else sensitivity[name] * relative ** 2
                    size.append(layer_nbytes(layer) + (channel_record_nbytes(choice) if index == 0 else 0))
                    pairs.append((_shrunk(by_name[name], module), option))
                cold, hot = (m.price(pairs, sizes=size) for m in (cost_model, warm_model))
                cold_cols, hot_cols = cold.columns(), hot.columns()
                rows.append((UnitOption(group, (option,) * len(group.layers), keep, criterion), error, sum(size),
                             np.array([float(cold_cols[c].sum()) for c in columns]),
                             np.array([float(hot_cols[c].sum()) for c in columns]),
                             float(cold.activation_bytes[0]), score))
    return rows


def _holder(model: nn.Module, group: ChannelGroup) -> nn.Module:
    """A module tree holding copies of just the group's layers and norms, under their own names."""
    root = nn.Module()
    for name in group.layers + group.norms:
        node = root
        *path, leaf = name.split(".")
        for part in path:
            if not hasattr(node, part):
                node.add_module(part, nn.Module())
            node = getattr(node, part)
        node.add_module(leaf, copy.deepcopy(model.get_submodule(name)))
    return root


def _shrunk(layer: Layer, module: nn.Module) -> Layer:
    """`layer` with the shapes of its pruned module."""
    macs = layer.macs * module.weight.numel() // layer.n_weights        # same positions, fewer weights
    if isinstance(module, nn.Linear):
        in_shape = layer.in_shape[:-1] + (module.in_features,)
        out_shape = layer.out_shape[:-1] + (module.out_features,)
        groups = 1
    else:
        in_shape = (layer.in_shape[0], module.in_channels, *layer.in_shape[2:])
        out_shape = (layer.out_shape[0], module.out_channels, *layer.out_shape[2:])
        groups = module.groups
    return dataclasses.replace(layer, weight_shape=tuple(module.weight.shape), in_shape=in_shape, out_shape=out_shape,
                               groups=groups, macs=macs, has_bias=module.bias is not None)

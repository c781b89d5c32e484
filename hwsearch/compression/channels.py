"""Structured pruning: whole filters and channels removed, so that the next layers shrink too.

A `ChannelGroup` is a set of channels that must be pruned alike: the output channels of
its producers (several, where a residual add ties them), which pass through batch norms,
activations, pooling, depthwise convs (whose filters go with them) and concatenations (at
an offset), and which its consumers read (a conv's input channels; a linear layer's
`features` columns per channel after a flatten). `channel_groups` finds them on the layer
graph, as Torch-Pruning's dependency graph does; a group whose channels reach anything
else (the model's output, a reshape into heads, a product with another tensor) is not
prunable and is left out.

Which channels go (`select_channels`):
- `l1` (Li et al. 2017): the filters of smallest L1 norm (summed over the producers, each
  producer's norms divided by their mean);
- `reconstruction` (He et al. 2017): a LASSO on the channels' contributions to the
  consumers' outputs on calibration inputs (from the input covariance, so no sample is
  stored), the penalty raised until the channels to keep remain; the consumers are then
  refitted by least squares to reconstruct their outputs from the kept channels.
With calibration inputs, `l1` also moves the removed channels' mean contribution into the
consumers' biases (the bias is stored per layer anyway).

`prune_channels_` really removes them: producers lose filters (and their batch norms those
entries), depthwise convs lose channels, consumers lose input channels; the model stays an
ordinary runnable module, smaller and faster.

About 470 lines: finding channel groups, choosing channels and removing them share the group's
description (producers, norms, depthwise convs, consumers at an offset), which the file format
records as it is; kept together so that a new pattern is added in one place.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from hwsearch.compression._base import Fitter
from hwsearch.errors import OptionError
from hwsearch.graph import LayerGraph
from hwsearch.compression.options import OPTION_VERSION, Option

CRITERIA = ("l1", "reconstruction")
_NORMS = ("BatchNorm2d", "BatchNorm1d")
_PASS_TYPES = {"ReLU", "ReLU6", "Hardswish", "Hardsigmoid", "SiLU", "GELU", "Sigmoid", "Tanh", "LeakyReLU", "ELU",
               "Mish", "Dropout", "Dropout2d", "Hardtanh", "Identity", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
               "AdaptiveMaxPool2d", "relu", "relu_", "relu6", "hardswish", "hardsigmoid", "silu", "gelu", "sigmoid",
               "tanh", "dropout", "leaky_relu", "hardtanh", "clamp", "clamp_min", "max_pool2d", "avg_pool2d",
               "adaptive_avg_pool2d", "adaptive_max_pool2d", "contiguous"}
LASSO_STEPS = 100           # proximal-gradient steps per penalty (warm-started from the last one kept)
LASSO_BISECTIONS = 24       # penalty bisection steps


@dataclass(frozen=True)
class ChannelGroup:
    """Channels pruned alike; `consumers` are (layer, channel offset in its input, input features per channel)."""
    channels: int
    producers: tuple[str, ...]
    norms: tuple[str, ...] = ()
    depthwise: tuple[str, ...] = ()
    consumers: tuple[tuple[str, int, int], ...] = ()

    @property
    def name(self) -> str:
        return self.producers[0]

    @property
    def layers(self) -> tuple[str, ...]:
        """The compressible layers whose shapes change: producers, depthwise convs, consumers."""
        return self.producers + self.depthwise + tuple(c for c, _, _ in self.consumers)

    def to_json(self) -> bytes:
        return json.dumps({"channels": self.channels, "producers": self.producers, "norms": self.norms,
                           "depthwise": self.depthwise, "consumers": self.consumers}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "ChannelGroup":
        raw = json.loads(data)
        return cls(raw["channels"], tuple(raw["producers"]), tuple(raw["norms"]), tuple(raw["depthwise"]),
                   tuple(tuple(c) for c in raw["consumers"]))


@dataclass(frozen=True)
class ChannelChoice:
    """Which channels of `group` a pruned model keeps (ascending indices)."""
    group: ChannelGroup
    kept: tuple[int, ...] = field(default=())


class _Unprunable(Exception):
    pass


def channel_groups(model: nn.Module, graph: LayerGraph) -> list[ChannelGroup]:
    """Every prunable channel group of `model`, in execution order of its first producer."""
    groups, seen = [], set()
    for layer in graph.compressible():
        if layer.name in seen or _is_depthwise(model, layer.name) or not _is_plain(model, layer.name):
            continue
        try:
            group = _group_of(model, graph, layer.name)
        except _Unprunable:
            continue
        seen.update(group.producers)
        groups.append(group)
    return groups


def disjoint_groups(groups: list[ChannelGroup]) -> list[ChannelGroup]:
    """Groups no two of which share a layer, smallest first (a block's inner channels before the residual
    stream that ties a whole stage, as Li et al. prune ResNets), then in execution order."""
    chosen, used = [], set()
    for group in sorted(groups, key=lambda g: (len(g.layers), groups.index(g))):
        if used.isdisjoint(group.layers):
            chosen.append(group)
            used.update(group.layers)
    return sorted(chosen, key=groups.index)


def _is_plain(model: nn.Module, name: str) -> bool:
    module = model.get_submodule(name)
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1)


def _is_depthwise(model: nn.Module, name: str) -> bool:
    module = model.get_submodule(name)
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels == \
        module.out_channels


def _node_of(graph: LayerGraph, name: str) -> str:
    for node, attrs in graph.graph.nodes(data=True):
        if "layer" in attrs and attrs["layer"].name == name:
            return node
    raise KeyError(name)


def _group_of(model: nn.Module, graph: LayerGraph, first: str) -> ChannelGroup:
    g = graph.graph
    producers, queue = [first], [first]
    norms, depthwise, consumers, visited = [], [], {}, set()

    def add(seq, item):
        if item not in seq:
            seq.append(item)

    def backward(node: str) -> None:
        """Producers whose output channels reach `node` unchanged (an input of a residual add)."""
        attrs = g.nodes[node]
        if "layer" in attrs:
            name = attrs["layer"].name
            if _is_depthwise(model, name):
                add(depthwise, name)
                for pred in g.predecessors(node):
                    backward(pred)
                return
            if not _is_plain(model, name):
                raise _Unprunable
            if name not in producers:
                producers.append(name)
                queue.append(name)
            return
        if attrs["type"] in _NORMS:
            add(norms, attrs["target"])
        elif attrs["type"] != "add" and attrs["type"] not in _PASS_TYPES:
            raise _Unprunable
        for pred in g.predecessors(node):
            backward(pred)

    def forward(node: str, offset: int, features: int) -> None:
        for succ in g.successors(node):
            if (succ, offset, features) in visited:
                continue
            visited.add((succ, offset, features))
            attrs = g.nodes[succ]
            kind = attrs["type"]
            if "layer" in attrs:
                name = attrs["layer"].name
                if _is_depthwise(model, name) and offset == 0 and features == 1 and \
                        model.get_submodule(name).in_channels == channels:
                    add(depthwise, name)
                    forward(succ, offset, features)
                elif _is_plain(model, name):
                    consumers[name] = (name, offset, features)
                else:
                    raise _Unprunable
            elif kind in _NORMS and offset == 0 and features == 1:
                add(norms, attrs["target"])
                forward(succ, offset, features)
            elif kind == "add" and offset == 0 and features == 1:
                for pred in g.predecessors(succ):
                    if pred != node:
                        backward(pred)
                forward(succ, offset, features)
            elif kind in ("cat", "concat") and attrs["dim"] in (1, -3) and features == 1:
                before = 0
                for name in attrs["inputs"]:
                    if name == node:
                        break
                    before += g.nodes[name]["out_shape"][1]
                forward(succ, offset + before, features)
            elif kind in ("flatten", "Flatten") and features == 1:
                shape = g.nodes[node]["out_shape"]
                start = attrs["dim"] if kind == "flatten" else model.get_submodule(attrs["target"]).start_dim
                if start != 1:
                    raise _Unprunable
                forward(succ, offset * math.prod(shape[2:]), math.prod(shape[2:]))
            elif kind in _PASS_TYPES:
                forward(succ, offset, features)
            else:
                raise _Unprunable

    channels = model.get_submodule(first).weight.shape[0]
    while queue:
        name = queue.pop(0)
        module = model.get_submodule(name)
        if module.weight.shape[0] != channels:
            raise _Unprunable
        forward(_node_of(graph, name), 0, 1)
    if not consumers or set(consumers) & set(producers):
        raise _Unprunable
    return ChannelGroup(channels, tuple(producers), tuple(norms), tuple(depthwise), tuple(consumers.values()))


# ---- which channels -------------------------------------------------------------------------------

def select_channels(model: nn.Module, group: ChannelGroup, keep: int, criterion: str,
                    inputs: dict[str, torch.Tensor] | None = None) -> tuple[int, ...]:
    """Indices of the `keep` channels of `group` to keep, ascending.

    `inputs`: what the original model feeds each consumer (`reconstruction` needs them).
    """
    if criterion not in CRITERIA:
        raise OptionError(f"channel criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    if not 1 <= keep <= group.channels:
        raise OptionError(f"keep {keep} channels of a {group.channels}-channel group: give 1 to {group.channels}")
    if criterion == "l1":
        score = torch.zeros(group.channels, dtype=torch.float64)
        for name in group.producers:
            w = model.get_submodule(name).weight.detach().double()
            norms = w.reshape(w.shape[0], -1).abs().sum(dim=1)
            score += norms / norms.mean().clamp_min(1e-30)
        order = torch.argsort(score, descending=True, stable=True)
    else:
        if inputs is None:
            raise OptionError("channel selection by reconstruction needs the consumers' calibration inputs")
        order = _lasso_order(model, group, keep, inputs)
    return tuple(sorted(int(i) for i in order[:keep]))


def _channel_columns(model: nn.Module, consumer: str, offset: int, features: int, channels: int) -> torch.Tensor:
    """(channels, taps) input-matrix columns of the group's channels in the consumer's weight matrix."""
    module = model.get_submodule(consumer)
    taps = features * (module.weight[0, 0].numel() if isinstance(module, nn.Conv2d) else 1)
    start = offset * (taps // features) if isinstance(module, nn.Conv2d) else offset
    return start + torch.arange(channels * taps).view(channels, taps)


def _lasso_order(model: nn.Module, group: ChannelGroup, keep: int, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Channels by He et al.'s LASSO: min ||Y - sum_c beta_c Z_c||^2 + lambda |beta|_1, Z_c channel c's
    contribution to the consumers' outputs. Ranks the channels by |beta| at the penalty leaving `keep`."""
    gram = torch.zeros(group.channels, group.channels, dtype=torch.float64)
    for consumer, offset, features in group.consumers:
        module = model.get_submodule(consumer)
        covariance, mean = Fitter(module, inputs[consumer]).input_covariance()
        second = covariance + torch.outer(mean, mean)                           # E[x x^T]: the means count too
        cols = _channel_columns(model, consumer, offset, features, group.channels)  # (C_g, taps)
        w = module.weight.detach().reshape(module.weight.shape[0], -1).double()[:, cols]   # (K, C_g, taps)
        sub = second[cols.reshape(-1)][:, cols.reshape(-1)].view(*cols.shape, *cols.shape)   # (C_g, t, C_g, t)
        part = torch.einsum("kci,cidj,kdj->cd", w, sub, w)
        gram += part / part.trace().clamp_min(1e-30)
    target = gram.sum(dim=1)                                # Y = sum_c Z_c: <Z_c, Y> for every c
    step = 1.0 / float(torch.linalg.eigvalsh(gram)[-1]).__abs__()

    def solve(penalty: float, start: torch.Tensor) -> torch.Tensor:
        beta = start
        for _ in range(LASSO_STEPS):
            z = beta - step * (gram @ beta - target)
            beta = torch.sign(z) * (z.abs() - step * penalty).clamp_min(0.0)
        return beta

    low, high = 0.0, float(target.abs().max()) * 2
    best = torch.ones(group.channels, dtype=torch.float64)     # the unpenalised solution: every channel at 1
    for _ in range(LASSO_BISECTIONS):
        middle = (low + high) / 2
        beta = solve(middle, best)
        if int((beta != 0).sum()) >= keep:
            low, best = middle, beta
        else:
            high = middle
    return torch.argsort(best.abs(), descending=True, stable=True)


# ---- removing them --------------------------------------------------------------------------------

def prune_channels_(model: nn.Module, choice: ChannelChoice, *, inputs: dict[str, torch.Tensor] | None = None,
                    refit: bool = False) -> nn.Module:
    """Remove every channel of `choice.group` not in `choice.kept`, in place; returns `model`.

    With `inputs` (what the original model feeds each consumer), consumers take the removed
    channels' mean contribution into their bias, or, with `refit`, are refitted by least squares
    on the kept channels (He et al.).
    """
    group, kept = choice.group, torch.tensor(choice.kept, dtype=torch.long)
    for name in group.producers:
        module = model.get_submodule(name)
        _replace(model, name, _rows(module, kept))
    for name in group.norms:
        _replace(model, name, _norm(model.get_submodule(name), kept))
    for name in group.depthwise:
        _replace(model, name, _depthwise(model.get_submodule(name), kept))
    for consumer, offset, features in group.consumers:
        module = model.get_submodule(consumer)
        cols = _channel_columns(model, consumer, offset, features, group.channels)   # (C_g, taps)
        keep_cols = torch.ones(module.weight[0].numel(), dtype=torch.bool)
        keep_cols[cols.reshape(-1)] = False
        keep_cols[cols[kept].reshape(-1)] = True
        x = None if inputs is None else inputs.get(consumer)
        _replace(model, consumer, _columns(module, keep_cols, offset, features, group, kept, x, refit))
    return model


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _rows(module: nn.Module, kept: torch.Tensor) -> nn.Module:
    """The producer with only the kept filters (rows)."""
    w = module.weight.detach()[kept]
    bias = None if module.bias is None else module.bias.detach()[kept]
    if isinstance(module, nn.Linear):
        new = nn.Linear(module.in_features, len(kept), bias=bias is not None)
    else:
        new = nn.Conv2d(module.in_channels, len(kept), module.kernel_size, module.stride, module.padding,
                        module.dilation, module.groups, bias is not None, module.padding_mode)
    return _load(new, w, bias, module)


def _depthwise(module: nn.Conv2d, kept: torch.Tensor) -> nn.Conv2d:
    new = nn.Conv2d(len(kept), len(kept), module.kernel_size, module.stride, module.padding, module.dilation,
                    len(kept), module.bias is not None, module.padding_mode)
    return _load(new, module.weight.detach()[kept], None if module.bias is None else module.bias.detach()[kept],
                 module)


def _norm(module: nn.Module, kept: torch.Tensor) -> nn.Module:
    new = type(module)(len(kept), module.eps, module.momentum, module.affine, module.track_running_stats)
    state = {k: (v[kept] if v.dim() == 1 else v) for k, v in module.state_dict().items()}
    new.load_state_dict(state)
    return new.train(module.training)


def _columns(module: nn.Module, keep_cols: torch.Tensor, offset: int, features: int, group: ChannelGroup,
             kept: torch.Tensor, x: torch.Tensor | None, refit: bool) -> nn.Module:
    """The consumer reading only the kept input channels; bias-compensated or refitted on `x`."""
    w = module.weight.detach().reshape(module.weight.shape[0], -1).double()      # (K, n)
    bias = None if module.bias is None else module.bias.detach().double()
    new_w = w[:, keep_cols]
    if x is not None:
        covariance, mean = Fitter(module, x).input_covariance()
        if refit:            # W' = argmin ||(W - W'_kept) x||^2 over centred inputs, then the mean back
            c_kk = covariance[keep_cols][:, keep_cols]
            c_kk = c_kk + 1e-6 * c_kk.diagonal().mean().clamp_min(1e-30) * torch.eye(len(c_kk), dtype=c_kk.dtype)
            new_w = torch.linalg.solve(c_kk, (w @ covariance[:, keep_cols]).T).T
        shift = w @ mean - new_w @ mean[keep_cols]                                # what the removed channels added
        bias = shift if bias is None else bias + shift
    removed = (group.channels - len(kept)) * features
    if isinstance(module, nn.Linear):
        new = nn.Linear(module.in_features - removed, module.out_features, bias=bias is not None)
        shape = (module.out_features, -1)
    else:
        new = nn.Conv2d(module.in_channels - removed, module.out_channels, module.kernel_size, module.stride,
                        module.padding, module.dilation, 1, bias is not None, module.padding_mode)
        shape = (module.out_channels, -1, *module.kernel_size)
    return _load(new, new_w.float().reshape(shape), None if bias is None else bias.float(), module)


def _load(new: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None, old: nn.Module) -> nn.Module:
    with torch.no_grad():
        new.weight.copy_(weight.reshape(new.weight.shape))
        if bias is not None:
            new.bias.copy_(bias)
    return new.train(old.training)


@dataclass(frozen=True)
class UnitOption:
    """What a channel group's layers become together: the channels kept (None: all), how they were
    chosen, and each layer's own option (in `group.layers` order), applied after the pruning."""
    group: ChannelGroup
    members: tuple[Option, ...]
    keep: int | None = None
    criterion: str = "l1"

    def __post_init__(self):
        if len(self.members) != len(self.group.layers):
            raise OptionError(f"a unit of {len(self.group.layers)} layers needs as many options, got "
                              f"{len(self.members)}")
        if self.keep is not None and not 1 <= self.keep <= self.group.channels:
            raise OptionError(f"keep must be 1 to {self.group.channels} channels (or None: all), got {self.keep}")
        if self.criterion not in CRITERIA:
            raise OptionError(f"criterion must be one of {', '.join(CRITERIA)}, got {self.criterion!r}")

    @property
    def label(self) -> str:
        members = "|".join(o.label for o in self.members)
        return members if self.keep is None else f"c{self.keep}-{self.criterion[:3]}:{members}"

    @property
    def data_aware(self) -> bool:
        """Whether applying it needs calibration inputs."""
        return (self.keep is not None and self.criterion == "reconstruction") or any(o.data_aware for o in
                                                                                     self.members)

    def to_dict(self) -> dict:
        return {"version": OPTION_VERSION, "kind": "channels", "group": json.loads(self.group.to_json()),
                "members": [o.to_dict() for o in self.members], "keep": self.keep, "criterion": self.criterion}

    @classmethod
    def from_dict(cls, data: dict) -> "UnitOption":
        group = ChannelGroup.from_json(json.dumps(data["group"]).encode())
        return cls(group, tuple(Option.from_dict(o) for o in data["members"]), data["keep"], data["criterion"])


def prune_unit_(model: nn.Module, option: UnitOption, inputs: dict[str, torch.Tensor] | None) -> ChannelChoice | None:
    """Prune `option.group` as `option` says, in place (nothing when it keeps every channel).

    `inputs`: what the original model feeds the group's layers (`reconstruction` needs them;
    `l1` uses them to move the removed channels' mean into the consumers' biases).
    """
    if option.keep is None:
        return None
    kept = select_channels(model, option.group, option.keep, option.criterion, inputs)
    choice = ChannelChoice(option.group, kept)
    prune_channels_(model, choice, inputs=inputs, refit=option.criterion == "reconstruction")
    return choice


def member_inputs(choice: ChannelChoice | None, name: str, x: torch.Tensor | None) -> torch.Tensor | None:
    """What a pruned layer of the group sees: the original layer's inputs `x` without the removed channels."""
    if choice is None or x is None or name in choice.group.producers:
        return x
    group, kept = choice.group, torch.tensor(choice.kept, dtype=torch.long)
    if name in group.depthwise:
        return x[:, kept]
    _, offset, features = next(c for c in group.consumers if c[0] == name)
    dim = 1 if x.dim() == 4 else -1
    keep = torch.ones(x.shape[dim], dtype=torch.bool)
    removed = torch.ones(group.channels, dtype=torch.bool)
    removed[kept] = False
    columns = offset + (torch.arange(group.channels)[removed, None] * features + torch.arange(features)).reshape(-1)
    keep[columns] = False
    return x[:, keep] if dim == 1 else x[..., keep]


def prune_evenly_(model: nn.Module, graph: LayerGraph, fraction: float, *, criterion: str = "l1",
                  inputs: dict[str, torch.Tensor] | None = None) -> ChannelChoice | None:
    """One round of Hsiao's order-deciding scheme (2017): prune `fraction` of the channels of the
    group whose layers carry the most multiply-accumulates now, so that compute falls evenly across
    layers round after round. In place; returns what was pruned (None when no group is prunable).
    `graph` is the layer graph of `model` as it is now."""
    macs = {layer.name: layer.macs for layer in graph.compressible()}
    groups = [g for g in channel_groups(model, graph) if round(g.channels * (1 - fraction)) >= 1]
    if not groups:
        return None
    group = max(groups, key=lambda g: sum(macs[name] for name in g.layers))
    keep = max(1, round(group.channels * (1 - fraction)))
    choice = ChannelChoice(group, select_channels(model, group, keep, criterion, inputs))
    prune_channels_(model, choice, inputs=inputs, refit=criterion == "reconstruction")
    return choice

"""The one core data structure: a model's layers as a networkx graph, traced once.

Example, a three-layer model `conv -> relu -> fc` traced with a (1, 1, 8, 8) input:

    graph = LayerGraph.trace(model, torch.zeros(1, 1, 8, 8))
    graph.layer("conv")        # Layer(kind="conv", weight_shape=(6, 1, 3, 3), out_shape=(1, 6, 8, 8), macs=3456, ...)
    graph.compressible()       # [conv, fc] in execution order
    graph.graph                # DiGraph x -> conv -> relu -> flatten -> fc -> output

Every fx node becomes a graph node (placeholders, activations, residual adds too),
so that activation traffic and channel coupling can be derived from the edges; only
convolutions (incl. grouped and depthwise) and linear layers are compressible and
carry a `Layer`. A residual add ties the output channels of the layers feeding it:
`coupling_groups()` returns those sets, which structured pruning must prune alike.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import networkx as nx
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from hwsearch.errors import ModelError

_ADD_TARGETS = {operator.add, operator.iadd, torch.add, "add", "add_"}


@dataclass(frozen=True)
class Layer:
    """A compressible layer: its weight viewed as a matrix (out_features, in_features per group)."""
    name: str                      # qualified module name, e.g. "layer1.0.conv1"
    kind: str                      # "conv" or "linear"
    weight_shape: tuple[int, ...]  # (K, C/groups, kh, kw) or (out, in)
    in_shape: tuple[int, ...]      # activation shapes include the batch dimension of the example
    out_shape: tuple[int, ...]
    groups: int = 1
    stride: tuple[int, ...] = (1,)
    padding: tuple[int, ...] = (0,)
    dilation: tuple[int, ...] = (1,)
    has_bias: bool = False
    macs: int = 0                  # multiply-accumulates for one example (batch 1)

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """(rows, cols) of the weight as a matrix: K x (C/groups * kh * kw)."""
        return self.weight_shape[0], math.prod(self.weight_shape[1:])

    @property
    def n_weights(self) -> int:
        return math.prod(self.weight_shape)

    @property
    def out_positions(self) -> int:
        """Output positions per example: H_out * W_out for a conv, leading dims for a linear."""
        out_features = self.out_shape[1] if self.kind == "conv" else self.out_shape[-1]
        return math.prod(self.out_shape[1:]) // out_features


class LayerGraph:
    """A traced model: a DiGraph of fx nodes plus the compressible `Layer`s in execution order."""

    def __init__(self, graph: nx.DiGraph, layers: dict[str, Layer]):
        self.graph = graph
        self._layers = layers

    @classmethod
    def trace(cls, model: nn.Module, example_input: torch.Tensor) -> "LayerGraph":
        """Trace with torch.fx and propagate shapes with one forward pass of `example_input`."""
        try:
            traced = fx.symbolic_trace(model)
        except Exception as exc:  # fx raises many types for data-dependent control flow
            raise ModelError(
                f"model {type(model).__name__} cannot be traced by torch.fx ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'no message'}); remove data-dependent "
                "control flow from forward() or wrap it in a leaf module") from None
        try:
            ShapeProp(traced).propagate(example_input)
        except Exception as exc:
            raise ModelError(
                f"model {type(model).__name__} fails on an input of shape {tuple(example_input.shape)} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no message'}); "
                "give an example input of the shape the model expects") from None

        graph, layers = nx.DiGraph(), {}
        modules = dict(traced.named_modules())
        for node in traced.graph.nodes:
            meta = node.meta.get("tensor_meta")
            out_shape = tuple(meta.shape) if hasattr(meta, "shape") else None
            attrs = {"op": node.op, "target": str(node.target), "out_shape": out_shape, "type": _node_type(node, modules)}
            if node.op == "call_module" and isinstance(modules[node.target], (nn.Conv2d, nn.Linear)):
                layer = _make_layer(node, modules[node.target])
                layers[layer.name] = layer
                attrs["layer"] = layer
            graph.add_node(node.name, **attrs)
            for parent in node.all_input_nodes:
                graph.add_edge(parent.name, node.name)
        return cls(graph, layers)

    def layer(self, name: str) -> Layer:
        return self._layers[name]

    def compressible(self) -> list[Layer]:
        """Compressible layers in execution order."""
        return list(self._layers.values())

    def coupling_groups(self) -> list[set[str]]:
        """Sets of layer names whose output channels a residual add ties together (size >= 2)."""
        parent = {name: name for name in self._layers}

        def find(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for node, attrs in self.graph.nodes(data=True):
            if attrs["type"] == "add":
                producers = [p for pred in self.graph.predecessors(node) for p in self._producers(pred)]
                for other in producers[1:]:
                    parent[find(other)] = find(producers[0])
        groups: dict[str, set[str]] = {}
        for name in self._layers:
            groups.setdefault(find(name), set()).add(name)
        return [g for g in groups.values() if len(g) > 1]

    def _producers(self, node: str) -> list[str]:
        """Compressible layers whose output channels reach `node` unchanged (through BN, ReLU, adds)."""
        attrs = self.graph.nodes[node]
        if "layer" in attrs:
            return [attrs["layer"].name]
        if attrs["op"] == "placeholder":
            return []
        return [p for pred in self.graph.predecessors(node) for p in self._producers(pred)]


def _node_type(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return type(modules[node.target]).__name__
    if node.op in ("call_function", "call_method") and node.target in _ADD_TARGETS:
        return "add"
    if node.op in ("call_function", "call_method"):
        return getattr(node.target, "__name__", str(node.target))
    return node.op


def _make_layer(node: fx.Node, module: nn.Module) -> Layer:
    in_shape = tuple(node.args[0].meta["tensor_meta"].shape)
    out_shape = tuple(node.meta["tensor_meta"].shape)
    weight_shape = tuple(module.weight.shape)
    # every output element of example 0 costs one MAC per weight of its filter (per group)
    per_example = math.prod(out_shape[1:]) * math.prod(weight_shape[1:])
    if isinstance(module, nn.Conv2d):
        if not isinstance(module.padding, tuple):
            raise ModelError(f"layer {node.target!r} uses padding={module.padding!r}; "
                             "hwsearch needs explicit integer padding, e.g. padding=1")
        return Layer(node.target, "conv", weight_shape, in_shape, out_shape, module.groups,
                     tuple(module.stride), tuple(module.padding), tuple(module.dilation),
                     module.bias is not None, per_example)
    return Layer(node.target, "linear", weight_shape, in_shape, out_shape,
                 has_bias=module.bias is not None, macs=per_example)

"""The one core data structure: a model's layers as a networkx graph, traced once.

Example, a three-layer model `conv -> relu -> fc` traced with a (1, 1, 8, 8) input:

    graph = LayerGraph.trace(model, torch.zeros(1, 1, 8, 8))
    graph.layer("conv")        # Layer(kind="conv", weight_shape=(6, 1, 3, 3), out_shape=(1, 6, 8, 8), macs=3456, ...)
    graph.compressible()       # [conv, fc] in execution order
    graph.ops()                # [conv, pool, fc]: everything that costs time; the relu is fused into the conv
    graph.graph                # DiGraph x -> conv -> relu -> flatten -> fc -> output

Every fx node becomes a graph node (placeholders, activations, residual adds too), so
that activation traffic and channel coupling can be derived from the edges.

Convolutions (incl. grouped and depthwise) and linear layers held by modules are
*compressible* and carry a `Layer`. Everything else that costs time on hardware is an
*op* (also a `Layer`, not compressible): transposed convolutions, matrix products
between activations (`@`, bmm, einsum, attention), pooling, and memory-bound
elementwise ops (residual adds, squeeze-excite products, concatenations). Batch norm,
activation functions and dropout directly after a conv or linear layer are fused into
it, as deployment runtimes do. `nn.MultiheadAttention` becomes its six products (q, k,
v and output projections, scores, context). MACs are counted exactly per op.

`ops` says what each fx node costs; `layer` holds `Layer`.

A residual add ties the output channels of the layers feeding it: `coupling_groups()`
returns those sets, which structured pruning must prune alike.
"""
from __future__ import annotations

import contextlib
import io
import math
import traceback
from pathlib import Path

import networkx as nx
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from hwsearch.errors import ModelError
from hwsearch.graph.layer import Layer
from hwsearch.graph.ops import costed, dim_argument, fused_nodes, node_type


class LayerGraph:
    """A traced model: a DiGraph of fx nodes plus its compressible layers and costed ops in execution order."""

    def __init__(self, graph: nx.DiGraph, layers: dict[str, Layer], ops: list[Layer] | None = None,
                 fused: set[str] = frozenset()):
        self.graph = graph
        self._layers = layers
        self._ops = list(layers.values()) if ops is None else ops
        self._fused = set(fused)          # names of the ops a fusing runtime folds into the layer before them

    @classmethod
    def trace(cls, model: nn.Module, example_input: torch.Tensor) -> "LayerGraph":
        """Trace with torch.fx and propagate shapes with one forward pass of `example_input`."""
        try:
            traced = fx.symbolic_trace(model)
        except Exception as exc:  # fx raises many types for data-dependent control flow
            raise ModelError(
                f"model {type(model).__name__} cannot be traced by torch.fx{_where(exc)} ({type(exc).__name__}: "
                f"{_first_line(exc)}); remove data-dependent control flow from forward() or wrap it in a leaf "
                "module") from None
        propagation = _ShapeProp(traced)
        try:
            with contextlib.redirect_stderr(io.StringIO()):      # ShapeProp prints a traceback before raising
                propagation.propagate(example_input)
        except Exception as exc:
            cause = exc.__cause__ or exc
            node = propagation.current
            where = f" at op {node.name!r} ({node_type(node, dict(traced.named_modules()))})" if node else ""
            raise ModelError(
                f"model {type(model).__name__} fails on an input of shape {tuple(example_input.shape)}{where} "
                f"({type(cause).__name__}: {_first_line(cause)}); give an example input of the shape the model "
                "expects") from None

        graph, layers, ops, fused_ops = nx.DiGraph(), {}, [], set()
        modules = dict(traced.named_modules())
        fused = fused_nodes(traced, modules)
        for node in traced.graph.nodes:
            meta = node.meta.get("tensor_meta")
            out_shape = tuple(meta.shape) if hasattr(meta, "shape") else None
            attrs = {"op": node.op, "target": str(node.target), "out_shape": out_shape,
                     "type": node_type(node, modules), "fused": node.name in fused,
                     # tensor inputs in argument order, and the dimension a cat or flatten works on
                     "inputs": [n.name for n in node.all_input_nodes], "dim": dim_argument(node)}
            node_ops = costed(node, modules)
            if node.name in fused:
                fused_ops.update(op.name for op in node_ops)
            else:
                for layer in node_ops:
                    if layer.compressible:
                        layers[layer.name] = layer
                        attrs["layer"] = layer
            attrs["ops"] = [] if node.name in fused else node_ops
            ops.extend(node_ops)
            graph.add_node(node.name, **attrs)
            for parent in node.all_input_nodes:
                graph.add_edge(parent.name, node.name)
        return cls(graph, layers, ops, fused_ops)

    def layer(self, name: str) -> Layer:
        return self._layers[name]

    def compressible(self) -> list[Layer]:
        """Compressible layers in execution order."""
        return list(self._layers.values())

    def ops(self, *, fused: bool = False) -> list[Layer]:
        """Every op that costs time, compressible or not, in execution order; with `fused`, also batch
        norms and activations that most runtimes fold into the layer before them (torch eager does not)."""
        return [op for op in self._ops if fused or op.name not in self._fused]

    def fixed_ops(self, *, fused: bool = False) -> list[Layer]:
        """The ops no compression option changes: what a plan's cost adds to its layers'."""
        return [op for op in self.ops(fused=fused) if not op.compressible]

    def activation_edges(self) -> list[tuple[str, str, int]]:
        """(producer, consumer, elements) for every activation passed between costed ops.

        Producers and consumers are op names, or "input" and "output" for the model's own
        input and result; views, fused ops and free ops in between are looked through.
        Elements count one example of the batch the model was traced with.
        """
        edges = []
        for node, attrs in self.graph.nodes(data=True):
            if attrs["ops"] or attrs["op"] == "output":
                consumer = attrs["ops"][0].name if attrs["ops"] else "output"
                for pred in self.graph.predecessors(node):
                    shape = self.graph.nodes[pred]["out_shape"]
                    elems = math.prod(shape[1:]) if shape else 0
                    for producer in self._costed_sources(pred):
                        edges.append((producer, consumer, elems))
        return edges

    def _costed_sources(self, node: str) -> list[str]:
        """The costed ops (or "input") whose output reaches `node` through views and fused ops."""
        attrs = self.graph.nodes[node]
        if attrs["ops"]:
            return [attrs["ops"][-1].name]
        if attrs["op"] == "placeholder":
            return ["input"]
        if attrs["op"] == "get_attr":
            return []
        return [p for pred in self.graph.predecessors(node) for p in self._costed_sources(pred)]

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


class _ShapeProp(ShapeProp):
    """ShapeProp that remembers the node it is running, to name it when the model fails."""
    current: fx.Node | None = None

    def run_node(self, n: fx.Node):
        self.current = n
        return super().run_node(n)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else "no message"


def _where(exc: BaseException) -> str:
    """' at file.py:42 (`source line`)': the user's line where tracing failed, outside torch itself."""
    ours = (str(Path(torch.__file__).resolve().parent), str(Path(__file__).resolve().parent.parent))   # torch, hwsearch
    # by package folder, not by name: a checkout that lives in a folder called hwsearch holds user code too
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not str(Path(f.filename).resolve()).startswith(tuple(f"{d}/" for d in ours))]
    if not frames:
        return ""
    frame = frames[-1]
    line = f" (`{frame.line.strip()}`)" if frame.line else ""
    return f" at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}{line}"

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

A residual add ties the output channels of the layers feeding it: `coupling_groups()`
returns those sets, which structured pruning must prune alike.
"""
from __future__ import annotations

import contextlib
import io
import math
import operator
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import networkx as nx
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn import functional as F

from hwsearch.errors import ModelError

_ADD_TARGETS = {operator.add, operator.iadd, torch.add, "add", "add_"}
# ops that move no data: views, shape queries, Python-level bookkeeping
_FREE = {operator.getitem, getattr, torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.transpose,
         torch.permute, torch.chunk, torch.split, torch.narrow, torch.t, "view", "reshape", "flatten", "size",
         "dim", "squeeze", "unsqueeze", "transpose", "permute", "chunk", "split", "expand", "t", "unflatten",
         "narrow", "view_as", "type_as", "to", "float", "detach", "numel", "unbind", torch.unbind}
_FREE_MODULES = (nn.Flatten, nn.Unflatten, nn.Identity)
# ops a runtime fuses into the conv or linear before them
_FUSABLE_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU,
                    nn.GELU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.Mish, nn.Dropout, nn.Dropout2d,
                    nn.Hardtanh, nn.PReLU)
_FUSABLE_FUNCTIONS = {torch.relu, F.relu, F.relu6, F.hardswish, F.hardsigmoid, F.silu, F.gelu, torch.sigmoid,
                      F.sigmoid, torch.tanh, F.dropout, F.batch_norm, F.leaky_relu, F.hardtanh, "relu", "relu_",
                      "sigmoid", "tanh", "clamp", torch.clamp, "clamp_min", torch.clamp_min}
_POOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                 nn.AdaptiveMaxPool2d)
_POOL_FUNCTIONS = {F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, torch.max_pool2d}
_MATMUL_FUNCTIONS = {operator.matmul, torch.matmul, torch.bmm, torch.mm, "matmul", "bmm", "mm"}
# leaf modules whose arithmetic hwsearch does not count: refuse them by name rather than guess
_UNCOUNTED_MODULES = (nn.RNNBase, nn.Transformer, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
                      nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose3d, nn.Bilinear)


@dataclass(frozen=True)
class Layer:
    """A costed operation; conv and linear layers held by modules are also compressible.

    Conv: weight (K, C/groups, kh, kw), activations (N, C, H, W). Linear: weight
    (out, in), activations (..., in). Transposed conv: weight (C_in, K/groups, kh, kw).
    Matmul (`a @ b` with b an activation): weight_shape (n, k) is b viewed per product,
    groups the number of products (batch and heads). Elementwise and pool ops have no
    weight; `in_elems` counts the elements of all their tensor inputs.
    """
    name: str                      # qualified module name ("layer1.0.conv1") or fx node name ("add_3")
    kind: str                      # conv, linear, conv_transpose, matmul, pool, elementwise
    weight_shape: tuple[int, ...]  # () for pool and elementwise
    in_shape: tuple[int, ...]      # activation shapes include the batch dimension of the example
    out_shape: tuple[int, ...]
    groups: int = 1
    stride: tuple[int, ...] = (1,)
    padding: tuple[int, ...] = (0,)
    dilation: tuple[int, ...] = (1,)
    has_bias: bool = False
    macs: int = 0                  # multiply-accumulates for the traced example
    compressible: bool = True      # a module's weight hwsearch may factorise, prune and quantise
    window: tuple[int, ...] = ()   # pooling window (kh, kw)
    in_elems: int = 0              # elementwise and pool: elements of all tensor inputs

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """(rows, cols) of the weight as a matrix: K x (C/groups * kh * kw)."""
        return self.weight_shape[0], math.prod(self.weight_shape[1:])

    @property
    def n_weights(self) -> int:
        return math.prod(self.weight_shape) if self.weight_shape else 0

    @property
    def out_positions(self) -> int:
        """Output positions per example: H_out * W_out for a conv, leading dims for a linear."""
        out_features = self.out_shape[1] if self.kind in ("conv", "conv_transpose") else self.out_shape[-1]
        return math.prod(self.out_shape[1:]) // out_features


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
            where = f" at op {node.name!r} ({_node_type(node, dict(traced.named_modules()))})" if node else ""
            raise ModelError(
                f"model {type(model).__name__} fails on an input of shape {tuple(example_input.shape)}{where} "
                f"({type(cause).__name__}: {_first_line(cause)}); give an example input of the shape the model "
                "expects") from None

        graph, layers, ops, fused_ops = nx.DiGraph(), {}, [], set()
        modules = dict(traced.named_modules())
        fused = _fused_nodes(traced, modules)
        for node in traced.graph.nodes:
            meta = node.meta.get("tensor_meta")
            out_shape = tuple(meta.shape) if hasattr(meta, "shape") else None
            attrs = {"op": node.op, "target": str(node.target), "out_shape": out_shape,
                     "type": _node_type(node, modules), "fused": node.name in fused,
                     # tensor inputs in argument order, and the dimension a cat or flatten works on
                     "inputs": [n.name for n in node.all_input_nodes], "dim": _dim_argument(node)}
            costed = _costed(node, modules)
            if node.name in fused:
                fused_ops.update(op.name for op in costed)
            else:
                for layer in costed:
                    if layer.compressible:
                        layers[layer.name] = layer
                        attrs["layer"] = layer
            attrs["ops"] = [] if node.name in fused else costed
            ops.extend(costed)
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


# ---- what each fx node costs ----------------------------------------------------------------------

def _costed(node: fx.Node, modules: dict[str, nn.Module]) -> list[Layer]:
    """The costed ops of one fx node: none (views, fused ops), one, or several (attention)."""
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, (nn.Conv1d, nn.Conv2d)) and not isinstance(module, _UNCOUNTED_MODULES):
            return [_conv_layer(node, module)]
        if isinstance(module, nn.Linear):
            return [_linear_layer(node, module)]
        if isinstance(module, nn.ConvTranspose2d):
            return [_conv_transpose_layer(node, module)]
        if isinstance(module, nn.MultiheadAttention):
            return _attention_layers(node, module)
        if isinstance(module, _UNCOUNTED_MODULES):
            raise ModelError(f"layer {node.target!r} is an nn.{type(module).__name__}, whose arithmetic hwsearch does "
                             "not count yet; express it with Conv2d, Linear, MultiheadAttention or matmul")
        if isinstance(module, _FREE_MODULES):
            return []
        if isinstance(module, _POOL_MODULES):
            return [_pool_layer(node, node.target, module)]
        return _elementwise(node, node.target)
    if node.op not in ("call_function", "call_method"):
        return []
    target = node.target
    if target in _FREE or node.meta.get("tensor_meta") is None:
        return []
    if target in _MATMUL_FUNCTIONS:
        return [_matmul_layer(node.name, _shape(node.args[0]), _shape(node.args[1]), _shape(node))]
    if target in (F.linear,):
        return [_functional_linear(node)]
    if target in (F.conv2d, torch.conv2d):
        return [_functional_conv(node)]
    if target is F.scaled_dot_product_attention:
        q, k, v = (_shape(a) for a in node.args[:3])
        scores = q[:-1] + (k[-2],)
        return [_matmul_layer(f"{node.name}.scores", q, k[:-2] + (k[-1], k[-2]), scores),
                _matmul_layer(f"{node.name}.context", scores, v, _shape(node))]
    if target is torch.einsum:
        return [_einsum_layer(node)]
    if target in _POOL_FUNCTIONS:
        return [_pool_layer(node, node.name)]
    return _elementwise(node, node.name)


def _shape(arg) -> tuple[int, ...]:
    meta = arg.meta.get("tensor_meta") if isinstance(arg, fx.Node) else None
    if not hasattr(meta, "shape"):
        raise ModelError(f"op {arg} has no tensor shape hwsearch can read")
    return tuple(meta.shape)


def _conv_layer(node: fx.Node, module: nn.Conv1d | nn.Conv2d) -> Layer:
    in_shape, out_shape = _shape(node.args[0]), _shape(node)
    weight_shape = tuple(module.weight.shape)
    if not isinstance(module.padding, tuple):
        raise ModelError(f"layer {node.target!r} uses padding={module.padding!r}; "
                         "hwsearch needs explicit integer padding, e.g. padding=1")
    # every output element costs one MAC per weight of its filter (per group)
    macs = math.prod(out_shape) * math.prod(weight_shape[1:])
    return Layer(node.target, "conv", weight_shape, in_shape, out_shape, module.groups, tuple(module.stride),
                 tuple(module.padding), tuple(module.dilation), module.bias is not None, macs)


def _linear_layer(node: fx.Node, module: nn.Linear) -> Layer:
    out_shape = _shape(node)
    return Layer(node.target, "linear", tuple(module.weight.shape), _shape(node.args[0]), out_shape,
                 has_bias=module.bias is not None, macs=math.prod(out_shape) * module.in_features)


def _conv_transpose_layer(node: fx.Node, module: nn.ConvTranspose2d) -> Layer:
    in_shape = _shape(node.args[0])
    weight_shape = tuple(module.weight.shape)                      # (C_in, K/groups, kh, kw)
    # every input element is scattered into K/groups * kh * kw outputs
    macs = math.prod(in_shape) * math.prod(weight_shape[1:])
    return Layer(node.target, "conv_transpose", weight_shape, in_shape, _shape(node), module.groups,
                 tuple(module.stride), tuple(module.padding), tuple(module.dilation), module.bias is not None,
                 macs, compressible=False)


def _matmul_layer(name: str, a: tuple[int, ...], b: tuple[int, ...], out: tuple[int, ...]) -> Layer:
    """a (..., m, k) @ b (..., k, n): prod(batch dims) products of an m x k by a k x n matrix."""
    k = a[-1]
    n = out[-1] if len(b) > 1 else 1
    products = math.prod(out[:-2]) if len(out) > 2 else 1
    return Layer(name, "matmul", (n, k), a, out, groups=products, macs=math.prod(out) * k, compressible=False)


def _functional_linear(node: fx.Node) -> Layer:
    weight = _shape(node.args[1])
    out = _shape(node)
    return Layer(node.name, "linear", weight, _shape(node.args[0]), out, has_bias=len(node.args) > 2,
                 macs=math.prod(out) * weight[1], compressible=False)


def _functional_conv(node: fx.Node) -> Layer:
    weight, out = _shape(node.args[1]), _shape(node)
    args = list(node.args) + [None] * 7
    kw = node.kwargs
    stride = kw.get("stride", args[3] if args[3] is not None else 1)
    padding = kw.get("padding", args[4] if args[4] is not None else 0)
    dilation = kw.get("dilation", args[5] if args[5] is not None else 1)
    groups = kw.get("groups", args[6] if args[6] is not None else 1)
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)   # noqa: E731
    if isinstance(padding, str):
        raise ModelError(f"op {node.name!r} calls conv2d with padding={padding!r}; use explicit integer padding")
    return Layer(node.name, "conv", weight, _shape(node.args[0]), out, groups, pair(stride), pair(padding),
                 pair(dilation), args[2] is not None, math.prod(out) * math.prod(weight[1:]), compressible=False)


def _einsum_layer(node: fx.Node) -> Layer:
    equation, operands = node.args[0], node.args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    inputs, _, output = equation.replace(" ", "").partition("->")
    terms = inputs.split(",")
    if len(terms) != 2 or not output:
        raise ModelError(f"op {node.name!r} is einsum {equation!r}; hwsearch counts two-operand einsums with an "
                         "explicit output ('ij,jk->ik') only")
    sizes = {}
    for term, operand in zip(terms, operands):
        sizes.update(zip(term, _shape(operand)))
    contracted = math.prod(sizes[c] for c in set(inputs.replace(",", "")) - set(output))
    out = _shape(node)
    # priced as one product: every output element is a dot product of length `contracted`
    return Layer(node.name, "matmul", (1, contracted), _shape(operands[0]), out, macs=math.prod(out) * contracted,
                 compressible=False)


def _attention_layers(node: fx.Node, module: nn.MultiheadAttention) -> list[Layer]:
    """nn.MultiheadAttention as its products: q, k, v projections, scores, context, output projection."""
    query, key = _shape(node.args[0]), _shape(node.args[1] if len(node.args) > 1 else node.kwargs["key"])
    if not module.batch_first and len(query) == 3:                  # (L, N, E) -> (N, L, E)
        query, key = (query[1], query[0], query[2]), (key[1], key[0], key[2])
    batch = query[0] if len(query) == 3 else 1
    length, source, embed, heads = query[-2], key[-2], module.embed_dim, module.num_heads
    head_dim = embed // heads
    name = node.target

    def projection(suffix: str, n_in: int, rows: int) -> Layer:
        shape_in, shape_out = (batch, rows, n_in), (batch, rows, embed)
        return Layer(f"{name}.{suffix}", "linear", (embed, n_in), shape_in, shape_out,
                     has_bias=module.in_proj_bias is not None, macs=batch * rows * embed * n_in, compressible=False)

    scores = (batch, heads, length, source)
    return [projection("q_proj", embed, length), projection("k_proj", module.kdim, source),
            projection("v_proj", module.vdim, source),
            _matmul_layer(f"{name}.scores", (batch, heads, length, head_dim), (batch, heads, head_dim, source), scores),
            _matmul_layer(f"{name}.context", scores, (batch, heads, source, head_dim), (batch, heads, length, head_dim)),
            replace(projection("out_proj", embed, length), has_bias=module.out_proj.bias is not None)]


def _pool_layer(node: fx.Node, name: str, module: nn.Module | None = None) -> Layer:
    in_shape, out_shape = _shape(node.args[0]), _shape(node)
    kernel = getattr(module, "kernel_size", None)
    if kernel is not None:
        window = tuple(kernel) if isinstance(kernel, (tuple, list)) else (kernel,) * (len(in_shape) - 2)
    else:   # adaptive pooling and functional calls: the input span each output covers
        window = tuple(max(1, -(-i // o)) for i, o in zip(in_shape[2:], out_shape[2:]))
    return Layer(name, "pool", (), in_shape, out_shape, window=window, compressible=False,
                 in_elems=math.prod(in_shape))


def _elementwise(node: fx.Node, name: str) -> list[Layer]:
    out_shape = _shape(node)
    tensors = [a for a in node.all_input_nodes if hasattr(a.meta.get("tensor_meta"), "shape")]
    if not tensors or not out_shape:
        return []
    in_elems = sum(math.prod(_shape(a)) for a in tensors)
    return [Layer(name, "elementwise", (), _shape(tensors[0]), out_shape, compressible=False, in_elems=in_elems)]


def _fused_nodes(traced: fx.GraphModule, modules: dict[str, nn.Module]) -> set[str]:
    """Batch norm, activations and dropout that a runtime folds into the conv, linear or add before them."""
    fused, producers = set(), set()
    for node in traced.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], (nn.Conv1d, nn.Conv2d, nn.Linear,
                                                                          nn.ConvTranspose2d)):
            producers.add(node.name)
        elif node.op in ("call_function", "call_method") and node.target in (_MATMUL_FUNCTIONS | {F.linear, F.conv2d}):
            producers.add(node.name)
        elif node.op in ("call_function", "call_method") and node.target in _ADD_TARGETS:
            producers.add(node.name)            # add + relu is one pass in every runtime
        elif _is_fusable(node, modules):
            tensors = node.all_input_nodes
            if len(tensors) == 1 and tensors[0].name in producers and len(tensors[0].users) == 1:
                fused.add(node.name)
                producers.add(node.name)
    return fused


def _is_fusable(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], _FUSABLE_MODULES)
    return node.op in ("call_function", "call_method") and node.target in _FUSABLE_FUNCTIONS


def _node_type(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return type(modules[node.target]).__name__
    if node.op in ("call_function", "call_method") and node.target in _ADD_TARGETS:
        return "add"
    if node.op in ("call_function", "call_method"):
        return getattr(node.target, "__name__", str(node.target))
    return node.op


def _dim_argument(node: fx.Node) -> int | None:
    """The `dim` of a concatenation or the `start_dim` of a flatten (module or function); None otherwise."""
    if node.op == "call_module":
        return None
    name = getattr(node.target, "__name__", str(node.target))
    if name in ("cat", "concat", "concatenate"):
        return node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
    if name == "flatten":
        return node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
    return None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else "no message"


def _where(exc: BaseException) -> str:
    """' at file.py:42 (`source line`)': the user's line where tracing failed, outside torch itself."""
    ours = (str(Path(torch.__file__).resolve().parent), str(Path(__file__).resolve().parent))
    # by package folder, not by name: a checkout that lives in a folder called hwsearch holds user code too
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not str(Path(f.filename).resolve()).startswith(tuple(f"{d}/" for d in ours))]
    if not frames:
        return ""
    frame = frames[-1]
    line = f" (`{frame.line.strip()}`)" if frame.line else ""
    return f" at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}{line}"

"""What each torch.fx node of a model costs: the op (a `Layer`) it is, or none.

Conv and linear modules are compressible layers; transposed convs, products between
activations (`@`, bmm, einsum, `nn.MultiheadAttention` as its six products), pooling and
memory-bound elementwise ops (adds, products, concatenations) are costed ops; views are
free; batch norms and activations right after a layer are fused into it. Modules whose
arithmetic hwsearch does not count are refused by name rather than guessed.
"""
from __future__ import annotations

import math
import operator
from dataclasses import replace

import torch
from torch import fx, nn
from torch.nn import functional as F

from hwsearch.errors import ModelError
from hwsearch.graph.layer import Layer

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




def costed(node: fx.Node, modules: dict[str, nn.Module]) -> list[Layer]:
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


def fused_nodes(traced: fx.GraphModule, modules: dict[str, nn.Module]) -> set[str]:
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


def node_type(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return type(modules[node.target]).__name__
    if node.op in ("call_function", "call_method") and node.target in _ADD_TARGETS:
        return "add"
    if node.op in ("call_function", "call_method"):
        return getattr(node.target, "__name__", str(node.target))
    return node.op


def dim_argument(node: fx.Node) -> int | None:
    """The `dim` of a concatenation or the `start_dim` of a flatten (module or function); None otherwise."""
    if node.op == "call_module":
        return None
    name = getattr(node.target, "__name__", str(node.target))
    if name in ("cat", "concat", "concatenate"):
        return node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
    if name == "flatten":
        return node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
    return None

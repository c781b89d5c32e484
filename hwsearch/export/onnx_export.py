"""What a deployed runtime runs: a compressed model as plain torch modules, then as ONNX.

A `CompressedLayer` recomputes its exported weight (masked, then quantized per row) on
every call, so that fine-tuning sees what is exported. A runtime holds that weight once:

    plain_(model)                          # each CompressedLayer -> Conv2d / Linear, or two of them
    export_onnx(model, x, "m.onnx")        # fp32 ONNX, batch fixed to x's
    export_onnx(model, x, "m8.onnx", int8_layers={"layer1.0.conv1", "fc"}, calibration=images)

With `int8_layers`, the named layers are statically quantized in QDQ form (per-channel
symmetric int8 weights, uint8 activations calibrated by min-max on `calibration`);
onnxruntime fuses each into an int8 kernel (QLinearConv, QGemm, QLinearMatMul). uint8
activations because onnxruntime's x86 int8 GEMM is u8 x s8 (VNNI `vpdpbusd`): measured
here, MatMulInteger with int8 activations falls back to a kernel 20x slower.
Weights of fewer than 8 bits are requantized to int8 codes (per row: the 4-bit grid is
not a subset of the 8-bit one, so they move by at most half an 8-bit step).
"""
from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from hwsearch.compression import CompressedLayer, quantize
from hwsearch.compression.layer import Sum, plain_layer

OPSET = 17
_WEIGHT_OPS = {"Conv", "Gemm", "MatMul"}     # what torch's exporter makes of Conv2d and Linear


def plain_(model: nn.Module) -> nn.Module:
    """Replace every `CompressedLayer` in `model` by plain modules computing the same function.

    Each step of a layer's structure becomes an `nn.Conv2d` or `nn.Linear` holding its
    exported weight (masked and dequantized); a chain of steps an `nn.Sequential` (a rank-r
    SVD of a conv: r filters of the original kernel, stride, padding and dilation, then a
    1x1 conv r -> K with the bias); several chains a `Sum` of them (low rank plus sparse).
    In place; returns `model`, or its replacement when `model` itself is a compressed layer.
    A layer shared by several parents stays shared.
    """
    if isinstance(model, CompressedLayer):
        return plain_layer(model)
    replacements: dict[int, nn.Module] = {}
    compressed = [(name, module) for name, module in model.named_modules(remove_duplicate=False)
                  if isinstance(module, CompressedLayer)]
    for name, layer in compressed:
        if id(layer) not in replacements:
            replacements[id(layer)] = plain_layer(layer)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, replacements[id(layer)])
    return model


def export_onnx(model: nn.Module, example_input: torch.Tensor, path: str | Path, *,
                int8_layers: set[str] | None = None, calibration: torch.Tensor | None = None,
                integer_weights: bool = False) -> Path:
    """Export `model` (compressed or not; left unchanged) to ONNX at `path`; returns the path.

    The exported graph is `plain_` of a copy of the model in eval mode (batch norm folded
    into the convolutions), opset 17, the batch dimension fixed to `example_input`'s.
    `int8_layers` names layers to run with int8 kernels; `calibration` (N, *example's
    per-example shape), N a multiple of the example's batch, gives their activation
    ranges. `integer_weights`: compressed weights stored as they are quantized, activations
    staying float (`_integer_weights`). The file is written under a temporary name and renamed.
    """
    path = Path(path)
    int8_layers = set(int8_layers or ())
    if int8_layers and integer_weights:
        raise ValueError("int8_layers (static int8 layers) and integer_weights (weight-only) are two exports: "
                         "choose one")
    batch = example_input.shape[0]
    if int8_layers:
        if calibration is None:
            raise ValueError("int8_layers needs calibration inputs to set activation ranges: "
                             "pass calibration=<tensor of a few representative inputs>")
        if calibration.shape[1:] != example_input.shape[1:] or len(calibration) % batch:
            raise ValueError(f"calibration must be (N, {', '.join(map(str, example_input.shape[1:]))}) with N a "
                             f"multiple of the example's batch {batch}, but got {tuple(calibration.shape)}")
    plain = plain_(copy.deepcopy(model)).eval()
    unknown = sorted(name for name in int8_layers if not _weight_modules(plain, name))
    if unknown:
        raise ValueError(f"int8_layers must name conv or linear layers of the model; these do not: {unknown}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        _export(plain, example_input, fp32)
        final = fp32
        if int8_layers:
            final = Path(tmp) / "int8.onnx"
            graph = onnx.load(fp32, load_external_data=False).graph
            nodes = [node for name in sorted(int8_layers)
                     for node in _layer_nodes(graph, name, len(_weight_modules(plain, name)))]
            _quantize(fp32, final, nodes + _glue_nodes(graph, set(nodes)), calibration.split(batch))
            missed = sorted(set(nodes) - quantized_nodes(onnx.load(final, load_external_data=False)))
            if missed:
                raise RuntimeError(f"onnxruntime's quantizer left nodes {missed} in float; "
                                   "remove their layers from int8_layers")
        if integer_weights:
            final = Path(tmp) / "integer.onnx"
            exported = onnx.load(fp32, load_external_data=False)
            _integer_weights(exported, model)
            onnx.save(exported, final)
        final.replace(path)                  # same directory: an atomic rename, never a half-written file
    return path


def _export(plain: nn.Module, example_input: torch.Tensor, path: Path) -> None:
    # The TorchScript-based exporter (dynamo=False): the torch.export-based one needs
    # onnxscript, which hwsearch does not depend on. The former warns that it is deprecated.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(plain, (example_input,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=["input"], output_names=["output"], do_constant_folding=True)


def _weight_modules(model: nn.Module, name: str) -> list[nn.Module]:
    """The Conv2d / Linear modules a plain layer consists of, in the order it runs them."""
    try:
        module = model.get_submodule(name)
    except AttributeError:
        return []
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        return [module]
    parts = list(module.modules())[1:]
    weighted = [m for m in parts if isinstance(m, (nn.Conv2d, nn.Linear))]
    if isinstance(module, (nn.Sequential, Sum)) and all(isinstance(m, (nn.Conv2d, nn.Linear, nn.Sequential,
                                                                      nn.ModuleList)) for m in parts):
        return weighted
    return []


def _layer_nodes(graph: onnx.GraphProto, name: str, expected: int) -> list[str]:
    """Names of the ONNX nodes that apply layer `name`'s weights.

    torch's TorchScript exporter names a node by its module path, one segment per level,
    each segment the level's qualified name from its last non-numeric atom on:
    module `layer1.0.conv1` gives `/layer1/layer1.0/conv1/Conv`, `fc.0` gives `/fc/fc.0/Gemm`.
    """
    atoms = name.split(".")
    segments = []
    for end in range(1, len(atoms) + 1):
        prefix = atoms[:end]
        start = max((i for i, atom in enumerate(prefix) if not atom.isnumeric()), default=0)
        segments.append(".".join(prefix[start:]))
    scope = "/" + "/".join(segments) + "/"
    nodes = [node.name for node in graph.node if node.op_type in _WEIGHT_OPS and node.name.startswith(scope)]
    if len(nodes) != expected:
        raise RuntimeError(f"layer {name!r}: expected {expected} Conv/Gemm/MatMul node(s) under scope {scope!r} "
                           f"in the exported graph, found {nodes}; is the layer called more than once?")
    return nodes


# ops between layers that a QDQ runtime runs on int8 data when their inputs are int8: activations are
# fused into the producing QLinearConv, adds become QLinearAdd, pooling and concatenation work on codes
_GLUE_OPS = {"Relu", "Clip", "Add", "MaxPool", "AveragePool", "GlobalAveragePool", "Concat", "Flatten", "Reshape"}


def _glue_nodes(graph: onnx.GraphProto, layer_nodes: set[str]) -> list[str]:
    """Nodes between int8 layers whose every activation input is int8: quantising them too keeps a run of
    int8 layers in int8, as a deployment would, instead of converting to float and back around each one."""
    constants = {init.name for init in graph.initializer}
    constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    int8, glue = set(), []
    for node in graph.node:                      # ONNX graphs are in topological order
        inputs = [name for name in node.input if name and name not in constants]
        if node.name in layer_nodes:
            int8.update(node.output)
        elif node.op_type in _GLUE_OPS and inputs and all(name in int8 for name in inputs):
            glue.append(node.name)
            int8.update(node.output)
    return glue


def _quantize(fp32: Path, out: Path, nodes: list[str], batches: tuple[torch.Tensor, ...]) -> None:
    # Imported here: the quantization tools load slowly and only int8 exports need them.
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quant_pre_process, quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{"input": batch.detach().float().numpy()} for batch in batches])

        def get_next(self):
            return next(self.feeds, None)

    # Pre-processing (shape inference, basic graph optimisation) keeps the Conv/Gemm node
    # names; without it the quantizer logs a warning through the root logger.
    prepared = out.with_name("prepared.onnx")
    # The quantizer logs through the root logger's module functions, which install a stderr
    # handler when the root has none (logging.basicConfig). A NullHandler for the duration
    # prevents that; applications that configured logging still receive the records.
    guard = logging.NullHandler()
    logging.getLogger().addHandler(guard)
    try:
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=False,
                        nodes_to_quantize=nodes, extra_options={"WeightSymmetric": True})
    finally:
        logging.getLogger().removeHandler(guard)


def quantized_nodes(model: onnx.ModelProto) -> set[str]:
    """Names of the Conv/Gemm/MatMul nodes of a QDQ model whose weight comes from int8 codes."""
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    int8_initializers = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT8}
    names = set()
    for node in graph.node:
        if node.op_type in _WEIGHT_OPS and len(node.input) > 1:
            source = producers.get(node.input[1])
            if source is not None and source.op_type == "DequantizeLinear" and source.input[0] in int8_initializers:
                names.add(node.name)
    return names


# ---- weights stored as integers ---------------------------------------------------------------------

def _integer_weights(exported: onnx.ModelProto, model: nn.Module) -> None:
    """Replace the float weight of every quantized step of the model's compressed layers by its codes, in place.

    Uniform codes (up to 8 bits) become an int8 initializer and a DequantizeLinear with one
    scale per output channel. Codebooks, which ONNX has no operator for, become their closest
    form: uint8 indices, cast and gathered from the codebook (its last entry a zero for the
    pruned weights). Where the exporter folded a batch norm into the weight, its per-channel
    factor goes into the scales (a Mul after the gather). Float weights and codes of more
    than 8 bits stay float.
    """
    from onnx import numpy_helper
    graph = exported.graph
    initializers = {init.name: init for init in graph.initializer}
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, CompressedLayer)]
    new_nodes: dict[str, list] = {}
    for name, layer in layers:
        steps = [step for chain in layer.structure for step in chain]
        try:
            nodes = _layer_nodes(graph, name, len(steps))
        except RuntimeError:
            continue                                  # a layer called twice: leave it float
        by_name = {n.name: n for n in graph.node}
        for step, node_name in zip(steps, nodes):
            node = by_name[node_name]
            factor = layer.factors[step.factor]
            if node.input[1] not in initializers or (getattr(factor, "codebook_bits", 0) == 0 and factor.bits > 8):
                continue
            weight = numpy_helper.to_array(initializers[node.input[1]])
            transposed = node.op_type == "MatMul"            # (in, out) instead of (out, in)
            rows = weight.T if transposed else weight.reshape(weight.shape[0], -1)   # (out, in*taps)
            prefix = f"{name}.{step.factor}"
            made = _shared_weight(prefix, factor, rows) if hasattr(factor, "codes") else _uniform_weight(
                prefix, factor, rows)
            if made is None:
                continue
            inits, ops, out = made
            shape_name = f"{prefix}.shape"
            target = weight.T.shape if transposed else weight.shape
            inits.append(numpy_helper.from_array(np.array(target if not transposed else rows.shape, np.int64),
                                                 shape_name))
            ops.append(onnx.helper.make_node("Reshape", [out, shape_name], [f"{prefix}.weight"]))
            if transposed:
                ops.append(onnx.helper.make_node("Transpose", [f"{prefix}.weight"], [f"{prefix}.weight_t"]))
            graph.initializer.remove(initializers.pop(node.input[1]))
            graph.initializer.extend(inits)
            new_nodes[node.name] = ops
            node.input[1] = ops[-1].output[0]
    ordered = []
    for node in graph.node:
        ordered.extend(new_nodes.get(node.name, []))
        ordered.append(node)
    del graph.node[:]
    graph.node.extend(ordered)


def _row_factor(rows: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Per-row factor f with rows ~ f * base (1 unless a batch norm was folded in), by least squares."""
    num = (rows.astype(np.float64) * base).sum(axis=1)
    den = (base.astype(np.float64) ** 2).sum(axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)


def _uniform_weight(prefix: str, factor, rows: np.ndarray):
    from onnx import numpy_helper
    with torch.no_grad():
        weight = factor.weight.detach() if factor.mask is None else factor.weight.detach() * factor.mask
        codes, scale = quantize(weight, factor.bits)                      # (out, in), (out,)
    codes, scale = codes.numpy().astype(np.int8), scale.numpy().astype(np.float64)
    scale = (scale * _row_factor(rows, codes * scale[:, None])).astype(np.float32)
    inits = [numpy_helper.from_array(codes, f"{prefix}.codes"), numpy_helper.from_array(scale, f"{prefix}.scale"),
             numpy_helper.from_array(np.zeros(len(scale), np.int8), f"{prefix}.zero")]
    ops = [onnx.helper.make_node("DequantizeLinear", [f"{prefix}.codes", f"{prefix}.scale", f"{prefix}.zero"],
                                 [f"{prefix}.dequantized"], axis=0)]
    return inits, ops, f"{prefix}.dequantized"


def _shared_weight(prefix: str, factor, rows: np.ndarray):
    from onnx import numpy_helper
    with torch.no_grad():
        centroids = factor.stored_centroids().detach().numpy().astype(np.float32)
        codes = factor.codes.long().numpy()
    zero = len(centroids)                                                  # the extra entry: 0.0
    if factor.mask is not None:
        codes = np.where(factor.mask.numpy(), codes, zero)
    dtype = np.uint8 if zero <= 255 else np.uint16
    book = np.concatenate([centroids, [0.0]]).astype(np.float32)
    base = book[codes]                                                     # (out, in)
    scale = _row_factor(rows, base).astype(np.float32)
    inits = [numpy_helper.from_array(codes.astype(dtype), f"{prefix}.indices"),
             numpy_helper.from_array(book, f"{prefix}.codebook"),
             numpy_helper.from_array(scale[:, None], f"{prefix}.scale")]
    ops = [onnx.helper.make_node("Cast", [f"{prefix}.indices"], [f"{prefix}.indices32"], to=onnx.TensorProto.INT32),
           onnx.helper.make_node("Gather", [f"{prefix}.codebook", f"{prefix}.indices32"], [f"{prefix}.gathered"]),
           onnx.helper.make_node("Mul", [f"{prefix}.gathered", f"{prefix}.scale"], [f"{prefix}.scaled"])]
    return inits, ops, f"{prefix}.scaled"


def predictions_agree(path: str | Path, model: nn.Module, split) -> float:
    """Share of `split`'s examples on which onnxruntime running `path` predicts the class `model` predicts."""
    import onnxruntime as ort
    run = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = run.get_inputs()[0].shape[0]
    same = total = 0
    model.eval()
    with torch.no_grad():
        for x, _ in split.batches(256):
            expected = model(x).argmax(1)
            for start in range(0, len(x) - len(x) % batch, batch):
                got = run.run(None, {"input": x[start:start + batch].numpy()})[0].argmax(1)
                same += int((torch.from_numpy(got) == expected[start:start + batch]).sum())
                total += batch
    return same / max(total, 1)

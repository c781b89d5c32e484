"""The compressed file: what the search promised, byte for byte.

Layout (little-endian), version 2:

    b"HWSC" | u16 version | u32 meta_len | meta (UTF-8 JSON)     header: independent of the plan
    dense tensors, in meta order, raw                             BN, buffers, weights of layers not
                                                                  compressed: unchanged
    per compressible layer, in meta order: its record, bias and factors (`hwsearch.compression.encoding`)
    u32 CRC-32 of everything before it

Because the header does not depend on the plan, a file's size is `fixed_bytes` plus the
sum of `hwsearch.compression.layer_nbytes` over layers: the size table the search reads is
exact. Version 1 (a 7-byte record per layer, biases among the dense tensors, masks as
bitmasks, uniform codes only) is still read.
"""
from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hwsearch.atomic_write import write_bytes
from hwsearch.compression import (CompressedLayer, Factor, Geometry, decode_layer, encode_layer, factor_shapes,
                               structure_of)
from hwsearch.compression.channels import prune_channels_
from hwsearch.compression.transforms import rebuild_transforms
from hwsearch.compression.encoding import Reader, unpack_bits
from hwsearch.errors import ArtifactError, HwsearchError
from hwsearch.workloads.models import LEGACY_NAMES, build_model, load_user_model
from hwsearch.compression import Option

MAGIC = b"HWSC"
VERSION = 2
_HEADER = struct.Struct("<4sHI")
_V1_RECORD = struct.Struct("<BIH")
_V1_KEPT = struct.Struct("<I")
_CRC = struct.Struct("<I")


# ---- sizes: the plan-independent part (each layer's part is `hwsearch.compression.layer_nbytes`) -------

def _dense_items(model: nn.Module, layer_names: list[str]) -> list[tuple[str, torch.Tensor]]:
    """State the file keeps as it is: everything but the compressible layers' own tensors, in state_dict order.

    The same list comes out of the original model (`<layer>.weight` and `.bias` dropped) and
    of its compressed form (`<layer>.factors.*` and `.bias` dropped), so the header does not
    depend on the plan. Batch norms of a pruned channel group are written at their original
    width (zeros for the removed channels, which the loader slices away again).
    """
    skip = tuple(f"{name}.factors." for name in layer_names)
    own = {f"{name}.{p}" for name in layer_names for p in ("weight", "bias")}
    widen = {}
    for name in layer_names:
        choice = getattr(model.get_submodule(name), "channels", None)
        if choice is not None:
            widen.update({norm: choice for norm in choice.group.norms})
    items = []
    for key, t in model.state_dict().items():
        if key in own or key.startswith(skip):
            continue
        choice = widen.get(key.rpartition(".")[0])
        if choice is not None and t.dim() == 1:
            full = torch.zeros(choice.group.channels, dtype=t.dtype)
            full[list(choice.kept)] = t
            t = full
        items.append((key, t))
    return items


def _meta(model: nn.Module, model_spec: dict, layer_names: list[str]) -> bytes:
    dense = [[key, str(t.dtype).removeprefix("torch."), list(t.shape)] for key, t in _dense_items(model, layer_names)]
    meta = {"format": "hwsearch-compressed", "model": model_spec, "layers": layer_names, "dense": dense}
    return json.dumps(meta, separators=(",", ":")).encode()


def fixed_bytes(model: nn.Module, *, model_spec: dict, layer_names: list[str]) -> int:
    """Bytes that do not depend on the plan: header, dense tensors, checksum."""
    dense = sum(t.numel() * t.element_size() for _, t in _dense_items(model, layer_names))
    return _HEADER.size + len(_meta(model, model_spec, layer_names)) + dense + _CRC.size


# ---- encoding -------------------------------------------------------------------------------------

def save(model: nn.Module, path: str | Path, *, model_spec: dict, layer_names: list[str]) -> int:
    """Write a compressed model (every layer in `layer_names` a CompressedLayer); returns bytes written."""
    meta = _meta(model, model_spec, layer_names)
    chunks = [_HEADER.pack(MAGIC, VERSION, len(meta)), meta]
    chunks += [t.contiguous().numpy().tobytes() for _, t in _dense_items(model, layer_names)]
    for name in layer_names:
        layer = model.get_submodule(name)
        if not isinstance(layer, CompressedLayer):
            raise TypeError(f"layer {name!r} is not compressed; apply a plan to every layer first")
        chunks.append(encode_layer(layer))
    body = b"".join(chunks)
    data = body + _CRC.pack(zlib.crc32(body))
    return write_bytes(path, data)           # never a half-written file under the final name


# ---- decoding -------------------------------------------------------------------------------------

def _model_name(spec: dict) -> str:
    return spec.get("name") or spec.get("builder") or spec.get("class", "?")


def architecture(spec: dict, *, model: nn.Module | None = None, trust_code: bool = False,
                 path: str | Path = "the file") -> nn.Module:
    """The architecture a file's header records, ready for its weights; runs no code the file names.

    A built-in architecture is built by name. A user's architecture is the `model` the
    caller passes (its weights are replaced), or, with `trust_code=True`, what the recorded
    builder returns: a file must not decide what code runs, as `torch.load(weights_only=True)`
    and `trust_remote_code` have it. The whole-model transforms the header records (a
    replaced classifier, pruned channels, split layers) are applied either way.
    """
    if model is None and ("builder" in spec or "class" in spec):
        if "class" in spec:
            raise ArtifactError(f"{path} holds a {spec['class']} that was passed to hwsearch as an object: pass its "
                                "architecture, hwsearch.load(path, model=...) (or hwsearch inspect --model "
                                "package.module:function)")
        builder = spec["builder"]
        if not trust_code:
            raise ArtifactError(f"{path} names the builder {builder} and loading runs no code a file names: pass the "
                                f"architecture, hwsearch.load(path, model={builder.rpartition(':')[2]}()), or trust "
                                f"the builder, hwsearch.load(path, trust_code=True) (hwsearch inspect --model "
                                f"{builder} or --trust-code)")
        model = load_user_model(builder)
    if model is None:
        if "name" not in spec:
            raise ArtifactError(f"{path} names no architecture (model {spec!r}); export it again")
        # version-1 files name the digits models as they were called before the reference architectures came
        model = build_model(LEGACY_NAMES.get(spec["name"], spec["name"]), **spec.get("kwargs", {}))
    return rebuild_transforms(model, spec)


def _read(path: str | Path) -> tuple[Reader, int, dict, int]:
    """The file checked whole (magic, checksum, version) and its header: (reader past it, version, meta, body size)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) < _HEADER.size + _CRC.size or data[:4] != MAGIC:
        raise ArtifactError(f"{path} is not an hwsearch compressed file (bad magic); pass a file written by hwsearch")
    body, (crc,) = data[:-_CRC.size], _CRC.unpack(data[-_CRC.size:])
    if zlib.crc32(body) != crc:
        raise ArtifactError(f"{path} is corrupt or truncated (checksum mismatch); export it again")
    reader = Reader(body, path)
    _, version, meta_len = _HEADER.unpack(reader.take(_HEADER.size))
    if version not in (1, VERSION):
        raise ArtifactError(f"{path} has format version {version}; this hwsearch reads versions 1 and {VERSION}: "
                            "export it again with this hwsearch, or read it with the hwsearch that wrote it")
    try:
        meta = json.loads(reader.take(meta_len))
        if not (isinstance(meta, dict) and isinstance(meta.get("model"), dict) and isinstance(meta.get("layers"), list)
                and isinstance(meta.get("dense"), list)):
            raise ValueError("not a header")
    except ValueError:
        raise ArtifactError(f"{path} has an unreadable header; export it again") from None
    return reader, version, meta, len(body)


def read_header(path: str | Path) -> dict:
    """What a file says about itself (architecture, compressed layers, dense tensors), checked whole; runs no code."""
    _, version, meta, _ = _read(path)
    return {**meta, "version": version}


def load(path: str | Path, *, model: nn.Module | None = None, trust_code: bool = False) -> tuple[nn.Module, dict]:
    """Read a compressed file back into a runnable model (eval mode); returns (model, meta).

    Built-in architectures rebuild by name. For a user's architecture pass `model` (a fresh
    instance, filled in place) or `trust_code=True` to call the builder the file records
    (see `architecture`).
    """
    path = Path(path)
    reader, version, meta, body_size = _read(path)
    try:
        return _decode(path, reader, version, meta, body_size, model, trust_code), meta
    except HwsearchError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:   # a header that passed its checksum
        text = str(exc).splitlines()[0] if str(exc) else ""                        # but names what is not there
        raise ArtifactError(f"{path} does not describe a model hwsearch can rebuild ({type(exc).__name__}: {text}); "
                            "export it again") from None


def _decode(path: Path, reader: Reader, version: int, meta: dict, body_size: int, model: nn.Module | None,
            trust_code: bool) -> nn.Module:
    model = architecture(meta["model"], model=model, trust_code=trust_code, path=path)
    dense = {}
    for key, dtype, shape in meta["dense"]:
        torch_dtype = getattr(torch, str(dtype), None)
        if not isinstance(torch_dtype, torch.dtype) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise reader.corrupt(f"dense tensor {key!r} of type {dtype!r} and shape {shape!r}")
        n_bytes = math.prod(shape) * torch.empty((), dtype=torch_dtype).element_size()
        dense[key] = torch.frombuffer(bytearray(reader.take(n_bytes)), dtype=torch_dtype).reshape(shape)
    # the dense state first: a pruned channel group then slices its batch norms as it prunes the layers
    missing, unexpected = model.load_state_dict(dense, strict=False)
    own = tuple(f"{name}." for name in meta["layers"])
    stray = sorted(k for k in missing if not k.startswith(own))
    if unexpected or stray:
        raise ArtifactError(f"{path} does not match the model it names ({_model_name(meta['model'])}): missing {stray[:3]}, "
                            f"unexpected {sorted(unexpected)[:3]}")
    for name in meta["layers"]:
        module = model.get_submodule(name)
        if version == VERSION:
            def prune(choice, name=name):
                prune_channels_(model, choice)
                return model.get_submodule(name)
            layer = decode_layer(reader, module, prune)
        else:
            layer = _decode_v1_layer(reader, module)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, layer)
    if reader.pos != body_size:
        raise ArtifactError(f"{path} has {body_size - reader.pos:,} unexpected trailing bytes; export it again")
    if version == 1:                        # version-1 biases are among the dense tensors
        model.load_state_dict({k: v for k, v in dense.items() if k.startswith(own)}, strict=False)
    return model.eval()


def _decode_v1_layer(reader: Reader, module: nn.Module) -> CompressedLayer:
    """A version-1 layer: 7-byte record, then per factor u32 kept | [bitmask] | packed codes | [fp32 row scales].
    Its bias is among the dense tensors and is loaded into the layer afterwards."""
    bits, rank, sparsity = reader.unpack(_V1_RECORD)
    try:
        option = Option(rank or None, sparsity / 10_000, bits)
        geometry = Geometry.of(module)
        structure = structure_of(geometry, option)
    except ValueError as exc:
        raise reader.corrupt(f"an option this layer cannot take ({exc})") from None
    factors = [_decode_v1_factor(reader, rows, cols, bits) for rows, cols in factor_shapes(structure)]
    return CompressedLayer(geometry, option, structure, factors, module.bias)


def _decode_v1_factor(reader: Reader, rows: int, cols: int, bits: int) -> Factor:
    numel = rows * cols
    (kept,) = reader.unpack(_V1_KEPT)
    if kept > numel:
        raise reader.corrupt(f"{kept:,} kept weights in a {rows}x{cols} factor")
    mask = np.ones(numel, bool)
    if kept < numel:
        mask = np.unpackbits(np.frombuffer(reader.take(math.ceil(numel / 8)), np.uint8),
                             count=numel, bitorder="little").astype(bool)
    values = np.zeros(numel, np.float32)
    if bits == 32:
        values[mask] = np.frombuffer(reader.take(4 * kept), "<f4")
    else:
        codes = unpack_bits(reader.take(math.ceil(kept * bits / 8)), kept, bits) - (2 ** (bits - 1) - 1)
        scale = np.frombuffer(reader.take(4 * rows), "<f4")
        full = np.zeros(numel, np.float32)
        full[mask] = codes
        values = (torch.from_numpy(full.reshape(rows, cols)) * torch.from_numpy(scale.copy())[:, None]).numpy()
    weight = torch.from_numpy(values.reshape(rows, cols).copy())
    mask_tensor = None if kept == numel else torch.from_numpy(mask.reshape(rows, cols).copy())
    return Factor(weight, mask_tensor, bits, frozen=True)

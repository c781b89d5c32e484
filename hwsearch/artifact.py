"""The compressed file: what the search promised, byte for byte.

Layout (little-endian), version 2:

    b"HWSC" | u16 version | u32 meta_len | meta (UTF-8 JSON)     header: independent of the plan
    dense tensors, in meta order, raw                             BN, buffers, weights of layers not
                                                                  compressed: unchanged
    per compressible layer, in meta order: its record, bias and factors (`hwsearch.compress.encoding`)
    u32 CRC-32 of everything before it

Because the header does not depend on the plan, a file's size is `fixed_bytes` plus the
sum of `hwsearch.compress.layer_nbytes` over layers: the size table the search reads is
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
from hwsearch.compress import (CompressedLayer, Factor, Geometry, decode_layer, encode_layer, factor_shapes,
                               structure_of)
from hwsearch.compress.channels import prune_channels_
from hwsearch.compress.transforms import rebuild_transforms
from hwsearch.compress.encoding import Reader, unpack_bits
from hwsearch.errors import ArtifactError
from hwsearch.models import LEGACY_NAMES, build_model, load_user_model
from hwsearch.options import Option

MAGIC = b"HWSC"
VERSION = 2
_HEADER = struct.Struct("<4sHI")
_V1_RECORD = struct.Struct("<BIH")
_V1_KEPT = struct.Struct("<I")
_CRC = struct.Struct("<I")


# ---- sizes: the plan-independent part (each layer's part is `hwsearch.compress.layer_nbytes`) -------

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
    return spec.get("name") or spec.get("builder", "?")


def rebuild(spec: dict) -> nn.Module:
    """The architecture a file records: a built-in by name, or the user's builder (its weights are replaced),
    with the whole-model transforms it records (a replaced classifier)."""
    if "builder" in spec:
        model = load_user_model(spec["builder"])
    else:
        # version-1 files name the digits models as they were called before the reference architectures came
        model = build_model(LEGACY_NAMES.get(spec["name"], spec["name"]), **spec.get("kwargs", {}))
    return rebuild_transforms(model, spec)


def load(path: str | Path) -> tuple[nn.Module, dict]:
    """Read a compressed file back into a runnable model (eval mode); returns (model, meta)."""
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
    meta = json.loads(reader.take(meta_len))
    model = rebuild(meta["model"])
    dense = {}
    for key, dtype, shape in meta["dense"]:
        torch_dtype = getattr(torch, dtype)
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
    if reader.pos != len(body):
        raise ArtifactError(f"{path} has {len(body) - reader.pos:,} unexpected trailing bytes; export it again")
    if version == 1:                        # version-1 biases are among the dense tensors
        model.load_state_dict({k: v for k, v in dense.items() if k.startswith(own)}, strict=False)
    return model.eval(), meta


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

"""The compressed file: what the search promised, byte for byte.

Layout (little-endian), version 1:

    b"HWSC" | u16 version | u32 meta_len | meta (UTF-8 JSON)     header: independent of the plan
    dense tensors, in meta order, raw                             BN, biases, buffers: unchanged
    per compressible layer, in meta order:
        u8 bits | u32 rank (0 = full) | u16 sparsity x 10^4       7-byte record
        per factor: u32 kept | [mask: ceil(numel/8) B if kept < numel]
                    | values: kept (or numel) codes of `bits` bits, bit-packed (fp32 if bits == 32)
                    | [scales: fp32 per row if bits < 32]
    u32 CRC-32 of everything before it

Because the header does not depend on the plan, a file's size is `fixed_bytes` plus
the sum of `layer_bytes` over layers: the size table the search reads is exact.
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
from hwsearch.compress import CompressedLayer, Factor, factor_shapes, kept_count, quantize
from hwsearch.errors import ArtifactError
from hwsearch.models import LEGACY_NAMES, build_model, load_user_model
from hwsearch.options import Option

MAGIC = b"HWSC"
VERSION = 1
_HEADER = struct.Struct("<4sHI")
_RECORD = struct.Struct("<BIH")
_KEPT = struct.Struct("<I")
_CRC = struct.Struct("<I")


# ---- sizes: the exact byte count of each part, used by the size table ---------------------------

def factor_bytes(rows: int, cols: int, sparsity: float, bits: int) -> int:
    numel = rows * cols
    kept = kept_count(numel, sparsity)
    mask = math.ceil(numel / 8) if kept < numel else 0
    values = 4 * kept if bits == 32 else math.ceil(kept * bits / 8)
    scales = 4 * rows if bits < 32 else 0
    return _KEPT.size + mask + values + scales


def layer_bytes(weight_shape: tuple[int, ...], option: Option) -> int:
    """Bytes one compressible layer takes in the file under `option`."""
    return _RECORD.size + sum(factor_bytes(r, c, option.sparsity, option.bits)
                              for r, c in factor_shapes(weight_shape, option))


def _dense_items(model: nn.Module, layer_names: list[str]) -> list[tuple[str, torch.Tensor]]:
    """State the file keeps as it is: everything but the compressible weights, in state_dict order.

    The same list comes out of the original model (`<layer>.weight` dropped) and of its
    compressed form (`<layer>.factors.*` dropped), so the header does not depend on the plan.
    """
    skip = tuple(f"{name}.factors." for name in layer_names)
    weights = {f"{name}.weight" for name in layer_names}
    return [(key, t) for key, t in model.state_dict().items() if key not in weights and not key.startswith(skip)]


def _meta(model: nn.Module, model_spec: dict, layer_names: list[str]) -> bytes:
    dense = [[key, str(t.dtype).removeprefix("torch."), list(t.shape)] for key, t in _dense_items(model, layer_names)]
    meta = {"format": "hwsearch-compressed", "model": model_spec, "layers": layer_names, "dense": dense}
    return json.dumps(meta, separators=(",", ":")).encode()


def fixed_bytes(model: nn.Module, *, model_spec: dict, layer_names: list[str]) -> int:
    """Bytes that do not depend on the plan: header, dense tensors, checksum."""
    dense = sum(t.numel() * t.element_size() for _, t in _dense_items(model, layer_names))
    return _HEADER.size + len(_meta(model, model_spec, layer_names)) + dense + _CRC.size


# ---- encoding -------------------------------------------------------------------------------------

def _pack(values: np.ndarray, bits: int) -> bytes:
    """Bit-pack unsigned integers of `bits` bits each (little-endian bit order)."""
    if bits == 8:
        return values.astype(np.uint8).tobytes()
    shifts = np.arange(bits, dtype=np.uint32)
    bit_matrix = ((values.astype(np.uint32)[:, None] >> shifts) & 1).astype(np.uint8)   # (count, bits)
    return np.packbits(bit_matrix.ravel(), bitorder="little").tobytes()


def _unpack(buffer: bytes, count: int, bits: int) -> np.ndarray:
    if bits == 8:
        return np.frombuffer(buffer, np.uint8, count).astype(np.int64)
    bit_matrix = np.unpackbits(np.frombuffer(buffer, np.uint8), count=count * bits, bitorder="little")
    return (bit_matrix.reshape(count, bits).astype(np.int64) << np.arange(bits)).sum(axis=1)


def _encode_factor(factor: Factor) -> bytes:
    weight = factor.weight.detach()
    if factor.mask is not None:
        weight = weight * factor.mask
    mask = factor.mask.flatten().numpy() if factor.mask is not None else np.ones(weight.numel(), bool)
    kept = int(mask.sum())
    parts = [_KEPT.pack(kept)]
    if kept < weight.numel():
        parts.append(np.packbits(mask, bitorder="little").tobytes())
    if factor.bits == 32:
        parts.append(weight.flatten().numpy()[mask].astype("<f4").tobytes())
    else:
        codes, scale = quantize(weight, factor.bits)
        offset = 2 ** (factor.bits - 1) - 1                      # codes -> [0, 2^bits - 2]
        parts.append(_pack((codes.flatten().numpy()[mask] + offset).astype(np.int64), factor.bits))
        parts.append(scale.numpy().astype("<f4").tobytes())
    return b"".join(parts)


def save(model: nn.Module, path: str | Path, *, model_spec: dict, layer_names: list[str]) -> int:
    """Write a compressed model (every layer in `layer_names` a CompressedLayer); returns bytes written."""
    meta = _meta(model, model_spec, layer_names)
    chunks = [_HEADER.pack(MAGIC, VERSION, len(meta)), meta]
    chunks += [t.contiguous().numpy().tobytes() for _, t in _dense_items(model, layer_names)]
    for name in layer_names:
        layer = model.get_submodule(name)
        if not isinstance(layer, CompressedLayer):
            raise TypeError(f"layer {name!r} is not compressed; apply a plan to every layer first")
        option = layer.option
        chunks.append(_RECORD.pack(option.bits, option.rank or 0, round(option.sparsity * 10_000)))
        chunks.extend(_encode_factor(factor) for factor in layer.factors)
    body = b"".join(chunks)
    data = body + _CRC.pack(zlib.crc32(body))
    return write_bytes(path, data)           # never a half-written file under the final name


# ---- decoding -------------------------------------------------------------------------------------

class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ArtifactError(f"{self.path} is truncated at byte {self.pos:,}; export it again")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk


def rebuild(spec: dict) -> nn.Module:
    """The architecture a file records: a built-in by name, or the user's builder (its weights are replaced)."""
    if "builder" in spec:
        return load_user_model(spec["builder"])
    # version-1 files name the digits models as they were called before the reference architectures came
    return build_model(LEGACY_NAMES.get(spec["name"], spec["name"]), **spec.get("kwargs", {}))


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
    reader = _Reader(body, path)
    _, version, meta_len = _HEADER.unpack(reader.take(_HEADER.size))
    if version != VERSION:
        raise ArtifactError(f"{path} has format version {version}; this hwsearch reads version {VERSION}")
    meta = json.loads(reader.take(meta_len))
    model = rebuild(meta["model"])
    dense = {}
    for key, dtype, shape in meta["dense"]:
        torch_dtype = getattr(torch, dtype)
        n_bytes = math.prod(shape) * torch.empty((), dtype=torch_dtype).element_size()
        dense[key] = torch.frombuffer(bytearray(reader.take(n_bytes)), dtype=torch_dtype).reshape(shape)
    for name in meta["layers"]:
        module = model.get_submodule(name)
        bits, rank, sparsity = _RECORD.unpack(reader.take(_RECORD.size))
        option = Option(rank or None, sparsity / 10_000, bits)
        factors = [_decode_factor(reader, rows, cols, bits) for rows, cols in factor_shapes(tuple(module.weight.shape), option)]
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, CompressedLayer(module, option, factors))
    if reader.pos != len(body):
        raise ArtifactError(f"{path} has {len(body) - reader.pos:,} unexpected trailing bytes; export it again")
    missing, unexpected = model.load_state_dict(dense, strict=False)
    factor_keys = {k for k in missing if ".factors." in k}
    if unexpected or set(missing) - factor_keys:
        raise ArtifactError(f"{path} does not match the model it names ({_model_name(meta['model'])}): "
                            f"missing {sorted(set(missing) - factor_keys)[:3]}, unexpected {sorted(unexpected)[:3]}")
    return model.eval(), meta


def _model_name(spec: dict) -> str:
    return spec.get("name") or spec.get("builder", "?")


def _decode_factor(reader: _Reader, rows: int, cols: int, bits: int) -> Factor:
    numel = rows * cols
    (kept,) = _KEPT.unpack(reader.take(_KEPT.size))
    if kept > numel:
        raise ArtifactError(f"{reader.path} is corrupt: {kept:,} kept weights in a {rows}x{cols} factor")
    mask = np.ones(numel, bool)
    if kept < numel:
        mask = np.unpackbits(np.frombuffer(reader.take(math.ceil(numel / 8)), np.uint8),
                             count=numel, bitorder="little").astype(bool)
    values = np.zeros(numel, np.float32)
    if bits == 32:
        values[mask] = np.frombuffer(reader.take(4 * kept), "<f4")
    else:
        codes = _unpack(reader.take(math.ceil(kept * bits / 8)), kept, bits) - (2 ** (bits - 1) - 1)
        scale = np.frombuffer(reader.take(4 * rows), "<f4")
        full = np.zeros(numel, np.float32)
        full[mask] = codes
        # same float32 product as the quantizer's forward, so outputs match bit for bit
        values = (torch.from_numpy(full.reshape(rows, cols)) * torch.from_numpy(scale.copy())[:, None]).numpy()
    weight = torch.from_numpy(values.reshape(rows, cols).copy())
    mask_tensor = None if kept == numel else torch.from_numpy(mask.reshape(rows, cols).copy())
    return Factor(weight, mask_tensor, bits, frozen=True)

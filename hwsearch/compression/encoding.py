"""A compressed layer as bytes, and its exact byte count without writing them.

Layer (little-endian):

    record   u8 method | u8 bits | u8 codebook bits | u8 flags | u32 rank | u32 rank_out
             | u16 sparsity x 10^4 | u16 density x 10^4            16 bytes; flags: init, data-aware, bias,
                                                                    channels
    channels on the first layer of a pruned channel group: u32 n | the group (n bytes of JSON: producers,
             norms, depthwise convs, consumers) | bitmask of the kept channels; the loader prunes the
             architecture with it before it reads the group's layers
    bias     fp32 x K, when the layer has one
    factors  in structure order, each:
        u8 layout | u32 kept
        positions of the kept weights, the smaller of:
            none       all weights kept
            bitmask    ceil(numel / 8) bytes
            relative   u8 index bits b (4..8) | u32 entries | a stream of b-bit symbols: the gap to the
                       previous kept weight, minus 1; the symbol 2^b - 1 is a filler that advances
                       2^b - 1 places and keeps nothing (Han et al.'s filler zero, without its value)
        values of the kept weights, in row-major order:
            fp32       4 bytes each
            uniform    bits-bit codes, bit-packed | fp32 scale per row
            codebook   2^bits centroids at 16 or 32 bits | a stream of bits-bit indices

A stream of symbols is stored at its fixed width or Huffman-coded (canonical code, lengths
at most 15 bits: 4-bit lengths per symbol | u32 bit count | the bits), whichever is
smaller. Only streams that retraining cannot change are coded that way (sparse positions,
codebook indices; uniform codes move as weights are fine-tuned), so the byte count fixed
when an option is fitted is the byte count of the exported file.

`layer_nbytes` counts a layer's bytes from its masks and code histograms, without encoding;
the tests check it against `len(encode_layer(...))` for every operator.

About 470 lines, on purpose: the writer, the reader and the exact count are one contract (the
search's size table is the file's size), and the tests hold each against the other two.
"""
from __future__ import annotations

import heapq
import math
import struct

import numpy as np
import torch

from hwsearch.compression._base import Geometry, factor_shapes, structure_of
from hwsearch.compression.factors import Factor, kept_count, quantize
from hwsearch.compression.layer import CompressedLayer
from hwsearch.compression.sharing import SharedFactor
from hwsearch.errors import ArtifactError
from hwsearch.compression.options import INITS, METHODS, Option

RECORD = struct.Struct("<BBBBIIHH")
_FACTOR = struct.Struct("<BI")
_RELATIVE = struct.Struct("<BI")
_U32 = struct.Struct("<I")
INDEX_BITS = (4, 5, 6, 7, 8)
MAX_CODE_BITS = 15
NONE, BITMASK, RELATIVE = 0, 1, 2            # layout bits 0-1
HUFFMAN_GAPS, HUFFMAN_CODES = 4, 8           # layout flags
_DATA_AWARE, _BIAS, _CHANNELS = 4, 8, 16     # record flags above the init's two bits


class Reader:
    """Bytes read in order; a short read is a truncated file."""

    def __init__(self, data: bytes, path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ArtifactError(f"{self.path} is truncated at byte {self.pos:,}; export it again")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, layout: struct.Struct) -> tuple:
        return layout.unpack(self.take(layout.size))

    def corrupt(self, what: str) -> ArtifactError:
        return ArtifactError(f"{self.path} is corrupt near byte {self.pos:,}: {what}; export it again")


# ---- fixed-width packing -------------------------------------------------------------------------

def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Bit-pack unsigned integers of `bits` bits each (little-endian bit order)."""
    if bits == 8:
        return values.astype(np.uint8).tobytes()
    shifts = np.arange(bits, dtype=np.uint32)
    bit_matrix = ((values.astype(np.uint32)[:, None] >> shifts) & 1).astype(np.uint8)   # (count, bits)
    return np.packbits(bit_matrix.ravel(), bitorder="little").tobytes()


def unpack_bits(buffer: bytes, count: int, bits: int) -> np.ndarray:
    if bits == 8:
        return np.frombuffer(buffer, np.uint8, count).astype(np.int64)
    bit_matrix = np.unpackbits(np.frombuffer(buffer, np.uint8), count=count * bits, bitorder="little")
    return (bit_matrix.reshape(count, bits).astype(np.int64) << np.arange(bits)).sum(axis=1)


# ---- Huffman --------------------------------------------------------------------------------------

def huffman_lengths(counts: np.ndarray) -> np.ndarray:
    """Code length of every symbol (0 for absent ones), at most MAX_CODE_BITS; deterministic."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(len(counts), dtype=np.int64)
    present = np.flatnonzero(counts)
    if len(present) == 1:
        lengths[present] = 1
    if len(present) <= 1:
        return lengths
    weights = counts.copy()
    while True:
        lengths[:] = 0
        heap = [(int(weights[s]), int(s), [int(s)]) for s in present]
        heapq.heapify(heap)
        while len(heap) > 1:
            w1, t1, s1 = heapq.heappop(heap)
            w2, t2, s2 = heapq.heappop(heap)
            lengths[s1 + s2] += 1
            heapq.heappush(heap, (w1 + w2, min(t1, t2), s1 + s2))
        if lengths.max() <= MAX_CODE_BITS:
            return lengths
        weights[present] = np.maximum(1, weights[present] >> 1)      # flatten the distribution and retry


def _canonical(lengths: np.ndarray) -> np.ndarray:
    codes = np.zeros(len(lengths), dtype=np.int64)
    code, previous = 0, 0
    for symbol in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[symbol]) - previous
        codes[symbol] = code
        previous = int(lengths[symbol])
        code += 1
    return codes


def _table_bytes(alphabet: int) -> int:
    return (alphabet + 1) // 2


def huffman_nbytes(counts: np.ndarray) -> int:
    """Bytes of a Huffman-coded stream with these symbol counts (table and bit count included)."""
    lengths = huffman_lengths(counts)
    return _table_bytes(len(counts)) + _U32.size + math.ceil(int((np.asarray(counts) * lengths).sum()) / 8)


def huffman_encode(symbols: np.ndarray, alphabet: int) -> bytes:
    lengths = huffman_lengths(np.bincount(symbols, minlength=alphabet))
    codes = _canonical(lengths)
    nibbles = np.zeros(2 * _table_bytes(alphabet), dtype=np.uint8)
    nibbles[:alphabet] = lengths
    table = (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8).tobytes()
    sizes, values = lengths[symbols], codes[symbols]                    # (count,) each
    total = int(sizes.sum())
    starts = np.cumsum(sizes) - sizes
    bits = np.zeros(total, dtype=np.uint8)
    for j in range(int(sizes.max(initial=0))):
        on = sizes > j
        bits[starts[on] + j] = (values[on] >> (sizes[on] - 1 - j)) & 1
    return table + _U32.pack(total) + np.packbits(bits, bitorder="big").tobytes()


def huffman_decode(reader: Reader, count: int, alphabet: int) -> np.ndarray:
    packed = np.frombuffer(reader.take(_table_bytes(alphabet)), np.uint8)
    lengths = np.stack([packed & 15, packed >> 4], axis=1).reshape(-1)[:alphabet].astype(np.int64)
    (total,) = reader.unpack(_U32)
    stream = np.unpackbits(np.frombuffer(reader.take(math.ceil(total / 8)), np.uint8), bitorder="big")[:total]
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    longest = int(lengths.max())
    if longest == 0:
        raise reader.corrupt("a Huffman table without symbols")
    codes = _canonical(lengths)
    table_symbol = np.zeros(1 << longest, dtype=np.int64)
    table_length = np.zeros(1 << longest, dtype=np.uint8)
    for symbol in np.flatnonzero(lengths):
        start = int(codes[symbol]) << (longest - int(lengths[symbol]))
        end = start + (1 << (longest - int(lengths[symbol])))
        table_symbol[start:end], table_length[start:end] = symbol, lengths[symbol]
    padded = np.concatenate([stream, np.zeros(longest, dtype=np.uint8)])
    window = np.zeros(total, dtype=np.int64)                             # the next `longest` bits at every position
    for j in range(longest):
        window = (window << 1) | padded[j:j + total]
    step = table_length[window].tobytes()
    starts, position = [], 0
    for _ in range(count):                                               # codes start where the previous one ended
        if position >= total or step[position] == 0:
            raise reader.corrupt("a Huffman stream shorter than its symbol count")
        starts.append(position)
        position += step[position]
    if position != total:
        raise reader.corrupt("a Huffman stream longer than its symbol count")
    return table_symbol[window[np.asarray(starts)]]


# ---- streams: fixed width or Huffman, whichever is smaller ----------------------------------------

def stream_nbytes(counts: np.ndarray, width: int) -> tuple[int, bool]:
    """(bytes, Huffman-coded?) of a stream of int(counts.sum()) symbols of `width` bits."""
    fixed = math.ceil(int(np.sum(counts)) * width / 8)
    coded = huffman_nbytes(counts)
    return (coded, True) if coded < fixed else (fixed, False)


def encode_stream(symbols: np.ndarray, width: int, huffman: bool) -> bytes:
    return huffman_encode(symbols, 1 << width) if huffman else pack_bits(symbols, width)


def decode_stream(reader: Reader, count: int, width: int, huffman: bool) -> np.ndarray:
    if huffman:
        return huffman_decode(reader, count, 1 << width)
    return unpack_bits(reader.take(math.ceil(count * width / 8)), count, width)


# ---- sparse positions ------------------------------------------------------------------------------

def relative_symbols(positions: np.ndarray, bits: int) -> np.ndarray:
    """Gaps between kept positions (minus 1) as `bits`-bit symbols, with fillers where a gap overflows."""
    filler = (1 << bits) - 1
    gaps = np.diff(positions, prepend=-1) - 1                             # >= 0
    fillers, rest = gaps // filler, gaps % filler
    out = np.full(len(positions) + int(fillers.sum()), filler, dtype=np.int64)
    out[np.cumsum(fillers + 1) - 1] = rest
    return out


def positions_from_symbols(symbols: np.ndarray, bits: int) -> np.ndarray:
    filler = (1 << bits) - 1
    steps = np.where(symbols == filler, filler, symbols + 1)
    return (np.cumsum(steps) - 1)[symbols != filler]


def _relative_choice(positions: np.ndarray) -> tuple[int, int, bool]:
    """(bytes, index bits, Huffman?) of the cheapest relative-index encoding of `positions`."""
    gaps = np.diff(positions, prepend=-1) - 1
    best = None
    for bits in INDEX_BITS:
        filler = (1 << bits) - 1
        counts = np.bincount(gaps % filler, minlength=1 << bits)
        counts[filler] += int((gaps // filler).sum())
        size, huffman = stream_nbytes(counts, bits)
        if best is None or _RELATIVE.size + size < best[0]:
            best = (_RELATIVE.size + size, bits, huffman)
    return best


# ---- one factor ---------------------------------------------------------------------------------------

def _kept_mask(factor) -> np.ndarray | None:
    """Flat mask of the kept weights; None when all are kept."""
    if factor.mask is None:
        return None
    mask = factor.mask.detach().flatten().numpy().astype(bool)
    return None if mask.all() else mask


def _codes(factor) -> np.ndarray:
    """Codebook indices of the kept weights (shared factors)."""
    mask = _kept_mask(factor)
    codes = factor.codes.flatten().numpy().astype(np.int64)
    return codes if mask is None else codes[mask]


def factor_nbytes(factor: Factor | SharedFactor) -> int:
    """Bytes `encode_factor(factor)` writes, from the mask and the code histogram."""
    rows, cols = factor.shape
    numel = rows * cols
    mask = _kept_mask(factor)
    kept = numel if mask is None else int(mask.sum())
    size = _FACTOR.size
    if mask is not None:
        size += min(math.ceil(numel / 8), _relative_choice(np.flatnonzero(mask))[0])
    if isinstance(factor, SharedFactor):
        counts = np.bincount(_codes(factor), minlength=1 << factor.bits)
        return size + (1 << factor.bits) * factor.codebook_bits // 8 + stream_nbytes(counts, factor.bits)[0]
    if factor.bits == 32:
        return size + 4 * kept
    return size + math.ceil(kept * factor.bits / 8) + 4 * rows


def encode_factor(factor: Factor | SharedFactor) -> bytes:
    rows, cols = factor.shape
    numel = rows * cols
    mask = _kept_mask(factor)
    kept = numel if mask is None else int(mask.sum())
    layout, positions_part = NONE, b""
    if mask is not None:
        positions = np.flatnonzero(mask)
        relative_bytes, bits, huffman = _relative_choice(positions)
        if relative_bytes < math.ceil(numel / 8):
            symbols = relative_symbols(positions, bits)
            layout = RELATIVE | (HUFFMAN_GAPS if huffman else 0)
            positions_part = _RELATIVE.pack(bits, len(symbols)) + encode_stream(symbols, bits, huffman)
        else:
            layout, positions_part = BITMASK, np.packbits(mask, bitorder="little").tobytes()
    if isinstance(factor, SharedFactor):
        codes = _codes(factor)
        _, huffman = stream_nbytes(np.bincount(codes, minlength=1 << factor.bits), factor.bits)
        layout |= HUFFMAN_CODES if huffman else 0
        dtype = "<f2" if factor.codebook_bits == 16 else "<f4"
        values = (factor.centroids.detach().numpy().astype(dtype).tobytes()
                  + encode_stream(codes, factor.bits, huffman))
    else:
        weight = factor.weight.detach()
        if factor.mask is not None:
            weight = weight * factor.mask
        flat_mask = np.ones(numel, bool) if mask is None else mask
        if factor.bits == 32:
            values = weight.flatten().numpy()[flat_mask].astype("<f4").tobytes()
        else:
            codes, scale = quantize(weight, factor.bits)
            offset = 2 ** (factor.bits - 1) - 1                            # codes -> [0, 2^bits - 2]
            values = (pack_bits((codes.flatten().numpy()[flat_mask] + offset).astype(np.int64), factor.bits)
                      + scale.numpy().astype("<f4").tobytes())
    return _FACTOR.pack(layout, kept) + positions_part + values


def decode_factor(reader: Reader, rows: int, cols: int, option: Option) -> Factor | SharedFactor:
    numel = rows * cols
    layout, kept = reader.unpack(_FACTOR)
    if kept > numel:
        raise reader.corrupt(f"{kept:,} kept weights in a {rows}x{cols} factor")
    mask = np.ones(numel, bool)
    if layout & 3 == BITMASK:
        mask = np.unpackbits(np.frombuffer(reader.take(math.ceil(numel / 8)), np.uint8), count=numel,
                             bitorder="little").astype(bool)
    elif layout & 3 == RELATIVE:
        bits, entries = reader.unpack(_RELATIVE)
        if bits not in INDEX_BITS:
            raise reader.corrupt(f"relative indices of {bits} bits")
        positions = positions_from_symbols(decode_stream(reader, entries, bits, bool(layout & HUFFMAN_GAPS)), bits)
        if len(positions) != kept or (kept and positions[-1] >= numel):
            raise reader.corrupt("sparse positions that do not match the kept count")
        mask = np.zeros(numel, bool)
        mask[positions] = True
    if int(mask.sum()) != kept:
        raise reader.corrupt("a mask that does not match the kept count")
    mask_tensor = None if kept == numel else torch.from_numpy(mask.reshape(rows, cols).copy())
    if option.codebook:
        dtype, width = ("<f2", 2) if option.codebook == 16 else ("<f4", 4)
        centroids = np.frombuffer(reader.take((1 << option.bits) * width), dtype).astype(np.float32)
        codes = np.zeros(numel, dtype=np.int64)
        codes[mask] = decode_stream(reader, kept, option.bits, bool(layout & HUFFMAN_CODES))
        return SharedFactor(torch.from_numpy(centroids.copy()), torch.from_numpy(codes.reshape(rows, cols)),
                            mask_tensor, option.bits, option.codebook)
    values = np.zeros(numel, np.float32)
    if option.bits == 32:
        values[mask] = np.frombuffer(reader.take(4 * kept), "<f4")
    else:
        offset = 2 ** (option.bits - 1) - 1
        codes = unpack_bits(reader.take(math.ceil(kept * option.bits / 8)), kept, option.bits) - offset
        scale = np.frombuffer(reader.take(4 * rows), "<f4")
        full = np.zeros(numel, np.float32)
        full[mask] = codes
        # the same float32 product as the quantizer's forward, so outputs match bit for bit
        values = (torch.from_numpy(full.reshape(rows, cols)) * torch.from_numpy(scale.copy())[:, None]).numpy()
    return Factor(torch.from_numpy(values.reshape(rows, cols).copy()), mask_tensor, option.bits, frozen=True)


# ---- one layer -------------------------------------------------------------------------------------

def option_record(option: Option, has_bias: bool, has_channels: bool = False) -> bytes:
    flags = (INITS.index(option.init) | (_DATA_AWARE if option.data_aware else 0) | (_BIAS if has_bias else 0)
             | (_CHANNELS if has_channels else 0))
    return RECORD.pack(METHODS.index(option.method), option.bits, option.codebook, flags, option.rank or 0,
                       option.rank_out or 0, round(option.sparsity * 10_000), round(option.density * 10_000))


def read_option(reader: Reader) -> tuple[Option, bool, bool]:
    method, bits, codebook, flags, rank, rank_out, sparsity, density = reader.unpack(RECORD)
    if method >= len(METHODS) or flags & 3 >= len(INITS):
        raise reader.corrupt(f"an unknown method ({method}) or initialisation ({flags & 3})")
    name = METHODS[method]
    try:
        option = Option(rank=None if name == "dense" else rank, sparsity=sparsity / 10_000, bits=bits, method=name,
                        rank_out=rank_out if name == "tucker2" else None, density=density / 10_000,
                        codebook=codebook, init=INITS[flags & 3], data_aware=bool(flags & _DATA_AWARE))
    except ValueError as exc:
        raise reader.corrupt(f"an invalid option ({exc})") from None
    return option, bool(flags & _BIAS), bool(flags & _CHANNELS)


def channel_record_nbytes(choice) -> int:
    """Bytes of the record a pruned channel group's first layer carries."""
    return len(_channel_record(choice))


def _channel_record(choice) -> bytes:
    spec = choice.group.to_json()
    mask = np.zeros(choice.group.channels, dtype=bool)
    mask[list(choice.kept)] = True
    return _U32.pack(len(spec)) + spec + np.packbits(mask, bitorder="little").tobytes()


def _read_channels(reader: Reader):
    from hwsearch.compression.channels import ChannelChoice, ChannelGroup
    (length,) = reader.unpack(_U32)
    try:
        group = ChannelGroup.from_json(reader.take(length))
    except (ValueError, KeyError, TypeError) as exc:
        raise reader.corrupt(f"an unreadable channel group ({exc})") from None
    mask = np.unpackbits(np.frombuffer(reader.take(math.ceil(group.channels / 8)), np.uint8), count=group.channels,
                         bitorder="little").astype(bool)
    if not mask.any():
        raise reader.corrupt("a channel group that keeps no channel")
    return ChannelChoice(group, tuple(int(i) for i in np.flatnonzero(mask)))


def layer_nbytes(layer: CompressedLayer) -> int:
    """Bytes `encode_layer(layer)` writes."""
    bias = 0 if layer.bias is None else 4 * layer.bias.numel()
    channels = 0 if layer.channels is None else len(_channel_record(layer.channels))
    return RECORD.size + channels + bias + sum(factor_nbytes(f) for f in layer.factors)


def encode_layer(layer: CompressedLayer) -> bytes:
    parts = [option_record(layer.option, layer.bias is not None, layer.channels is not None)]
    if layer.channels is not None:
        parts.append(_channel_record(layer.channels))
    if layer.bias is not None:
        parts.append(layer.bias.detach().numpy().astype("<f4").tobytes())
    parts.extend(encode_factor(f) for f in layer.factors)
    return b"".join(parts)


def decode_layer(reader: Reader, module, prune=None) -> CompressedLayer:
    """The layer `module` (the architecture's own, for its geometry) as written by `encode_layer`.

    `prune(choice)`: called with the `ChannelChoice` of a pruned channel group this layer opens;
    it prunes the architecture and returns this layer's module as it now is.
    """
    option, has_bias, has_channels = read_option(reader)
    choice = None
    if has_channels:
        choice = _read_channels(reader)
        if prune is None:
            raise reader.corrupt("a pruned channel group where a single layer was expected")
        module = prune(choice)
    geometry = Geometry.of(module)
    try:
        structure = structure_of(geometry, option)
    except ValueError as exc:
        raise reader.corrupt(f"an option this layer cannot take ({exc})") from None
    bias = None
    if has_bias:
        bias = torch.from_numpy(np.frombuffer(reader.take(4 * geometry.out_channels), "<f4").copy())
    factors = [decode_factor(reader, rows, cols, option) for rows, cols in factor_shapes(structure)]
    layer = CompressedLayer(geometry, option, structure, factors, bias)
    layer.channels = choice
    return layer


def estimate_layer_nbytes(geometry: Geometry, option: Option, has_bias: bool) -> int:
    """Bytes of a layer from shapes alone: exact for options without sparse positions or codebooks, else an
    upper bound (a bitmask for the positions, fixed-width indices); the file may only be smaller."""
    from hwsearch.compression.lowrank_sparse import sparse_count
    structure = structure_of(geometry, option)
    shapes = factor_shapes(structure)
    bias = 4 * geometry.out_channels if (has_bias or option.data_aware) else 0
    total = RECORD.size + bias
    sparse_factor = len(shapes) - 1 if option.method == "lowrank_sparse" and option.density else None
    for index, (rows, cols) in enumerate(shapes):
        numel = rows * cols
        if index == sparse_factor:
            kept = geometry.groups * sparse_count(numel // geometry.groups, option.density)
        else:
            kept = kept_count(numel, option.sparsity)
        total += _FACTOR.size + (math.ceil(numel / 8) if kept < numel else 0)
        if option.codebook:
            total += (1 << option.bits) * option.codebook // 8 + math.ceil(kept * option.bits / 8)
        elif option.bits == 32:
            total += 4 * kept
        else:
            total += math.ceil(kept * option.bits / 8) + 4 * rows
    return total

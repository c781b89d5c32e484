"""The pieces of the file encoding: bit packing, Huffman streams, sparse positions."""
import numpy as np
import pytest
import torch

from hwsearch.compression import Factor, SharedFactor, factor_nbytes
from hwsearch.compression.encoding import (BITMASK, MAX_CODE_BITS, RELATIVE, HUFFMAN_CODES, Reader, encode_factor,
                                        huffman_decode, huffman_encode, huffman_lengths, huffman_nbytes,
                                        pack_bits, positions_from_symbols, relative_symbols, unpack_bits)


@pytest.mark.parametrize("bits", [2, 3, 5, 8, 13])
def test_fixed_width_packing_round_trips(bits):
    values = np.random.default_rng(bits).integers(0, 2 ** bits, 1001)
    assert np.array_equal(unpack_bits(pack_bits(values, bits), 1001, bits), values)


FIBONACCI = [1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181, 6765, 10946, 17711]


@pytest.mark.parametrize("counts", [
    [5, 0, 0, 0],                                   # a single symbol
    [100, 50, 25, 12, 6, 3, 1, 1],                  # skewed, as codebook indices are
    FIBONACCI,                                      # unlimited Huffman would give a 21-bit code
    list(range(1, 257)),                            # a full 8-bit alphabet
])
def test_huffman_streams_round_trip_within_15_bit_codes_and_count_their_bytes(counts):
    counts = np.asarray(counts)
    symbols = np.random.default_rng(0).permutation(np.repeat(np.arange(len(counts)), counts))
    lengths = huffman_lengths(counts)
    assert lengths.max() <= MAX_CODE_BITS and (lengths[counts > 0] > 0).all()
    assert (2.0 ** -lengths[lengths > 0]).sum() <= 1.0                      # a prefix code (Kraft)
    data = huffman_encode(symbols, len(counts))
    assert len(data) == huffman_nbytes(counts)
    reader = Reader(data + b"tail", "stream")
    assert np.array_equal(huffman_decode(reader, len(symbols), len(counts)), symbols)
    assert reader.pos == len(data)


def test_huffman_beats_fixed_width_on_a_skewed_stream():
    counts = np.array([1000, 300, 100, 30, 10, 3, 1, 1])
    assert huffman_nbytes(counts) < counts.sum() * 3 / 8


@pytest.mark.parametrize("bits", [4, 5, 8])
def test_relative_indices_insert_fillers_where_a_gap_overflows(bits):
    positions = np.array([0, 1, 2 ** bits * 3 + 7, 2 ** bits * 3 + 8, 50_000])
    symbols = relative_symbols(positions, bits)
    filler = 2 ** bits - 1
    assert (symbols == filler).sum() > 0 and symbols.max() <= filler
    assert np.array_equal(positions_from_symbols(symbols, bits), positions)


def _factor(sparsity: float, numel: int = 4000) -> Factor:
    torch.manual_seed(0)
    weight = torch.randn(40, numel // 40)
    mask = torch.rand(40, numel // 40) >= sparsity
    return Factor(weight, mask, 8)


def test_positions_take_a_bitmask_when_dense_and_relative_indices_when_sparse():
    assert encode_factor(_factor(0.5))[0] & 3 == BITMASK
    sparse = encode_factor(_factor(0.98))
    assert sparse[0] & 3 == RELATIVE and len(sparse) == factor_nbytes(_factor(0.98))
    assert factor_nbytes(_factor(0.98)) < 4000 // 8 + int(_factor(0.98).mask.sum()) + 4 * 40


def test_skewed_codebook_indices_are_huffman_coded():
    codes = torch.from_numpy(np.random.default_rng(0).geometric(0.5, (30, 30)).clip(1, 16) - 1)
    factor = SharedFactor(torch.linspace(-1, 1, 16), codes, None, 4, 16)
    data = encode_factor(factor)
    assert data[0] & HUFFMAN_CODES and len(data) == factor_nbytes(factor) < 5 + 32 + 900 * 4 // 8

import pytest
from hypothesis import given, strategies as st

from hwsearch.budget import format_size, parse_size
from hwsearch.errors import BudgetError


@pytest.mark.parametrize("text, expected", [
    ("10MB", 10_000_000), ("10MiB", 10 * 2**20), ("500KB", 500_000), ("10000000", 10_000_000),
    ("1.5GB", 1_500_000_000), ("64kib", 65_536), (" 2 MB ", 2_000_000), ("123B", 123),
])
def test_parses_si_and_binary_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["10XB", "MB", "", "-5MB", "ten", "10 M B", "0", "1e6"])
def test_rejects_anything_else_with_a_fix(text):
    with pytest.raises(BudgetError, match="e.g. 10MB|positive size"):
        parse_size(text)


@given(st.integers(min_value=1, max_value=10**12))
def test_plain_byte_counts_round_trip(n):
    assert parse_size(str(n)) == n


def test_format_size_uses_si_units():
    assert format_size(10_000_000) == "10.00 MB"
    assert format_size(999) == "999 B"

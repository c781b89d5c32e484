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


def _one_line(exc: Exception) -> bool:
    return "\n" not in str(exc) and len(str(exc)) < 400


def _size_or_one_line(text: str) -> None:
    try:
        size = parse_size(text)
    except BudgetError as exc:
        assert _one_line(exc)
    else:
        assert isinstance(size, int) and 0 < size <= 10**15


@given(st.text(max_size=60))
def test_any_text_is_a_size_or_one_line_saying_why_not(text):
    _size_or_one_line(text)


@given(st.from_regex(r"\A[-+]?[0-9٠-٩０-９]{1,420}(\.[0-9]{1,5})?\s?(B|KB|MB|GB|KiB|MiB|GiB|kb|TB|µs)?\Z"))
def test_number_like_text_is_a_size_or_one_line(text):
    _size_or_one_line(text)


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["KB", "MB", "GB", "KiB", "MiB", "GiB"]))
def test_sizes_with_units_parse_to_their_byte_count(n, unit):
    scale = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]
    if n * scale <= 10**15:
        assert parse_size(f"{n}{unit}") == n * scale
    else:
        with pytest.raises(BudgetError, match="larger than any file"):
            parse_size(f"{n}{unit}")


@given(st.text(max_size=40))
def test_any_text_is_a_latency_or_an_energy_or_one_line(text):
    from hwsearch.budget import parse_energy, parse_latency

    for parse in (parse_latency, parse_energy):
        try:
            value = parse(text)
        except BudgetError as exc:
            assert _one_line(exc)
        else:
            assert 0 < value < float("inf")


@pytest.mark.parametrize("text, message", [
    ("２０KB", "has digits that are not ASCII 0-9: write it as '20KB'"),
    ("٢٠KB", "write it as '20KB'"),
    ("-5MB", "is negative"),
    ("1" + "0" * 400, r"'1000.*\.\.\.' \(401 characters\) is larger than any file"),
])
def test_non_ascii_digits_negative_and_enormous_budgets_are_named(text, message):
    with pytest.raises(BudgetError, match=message):
        parse_size(text)

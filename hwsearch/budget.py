"""Budget strings: `10MB` is 10,000,000 bytes (SI), `10MiB` is 10 x 2**20 bytes.

The exported file must fit the budget byte for byte, so the unit convention matters
and both families are accepted and spelled out in `--help`.
"""
from __future__ import annotations

import re

from hwsearch.errors import BudgetError

UNITS = {
    "": 1, "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30,
}
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str) -> int:
    """Parse a size budget into bytes: `10MB`, `10MiB`, `500KB`, `1.5GB`, `10000000`."""
    match = _BUDGET.match(text)
    unit = match.group(2).upper() if match else None
    if match is None or unit not in UNITS:
        raise BudgetError(
            f"budget {text!r} is not a size: write a number with an optional unit "
            "B, KB, MB, GB (powers of 10) or KiB, MiB, GiB (powers of 2), e.g. 10MB or 500KB")
    size = int(float(match.group(1)) * UNITS[unit])
    if size <= 0:
        raise BudgetError(f"budget {text!r} is {size} bytes: it must be a positive size, e.g. 10MB")
    return size


def format_size(n_bytes: int) -> str:
    """Human form in SI units, matching how budgets are usually written."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes} B"

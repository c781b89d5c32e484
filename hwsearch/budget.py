"""Budgets: a file size (`10MB`), a latency (`5ms`) and an energy (`2mJ`), each a hard constraint.

`10MB` is 10,000,000 bytes (SI), `10MiB` is 10 x 2**20 bytes: the exported file must fit
the budget byte for byte, so the unit convention matters and both families are
accepted and spelled out in `--help`. Latency and energy are per inference on the
target, as its cost model predicts them. Numbers are plain ASCII decimals; anything
else is refused with the rule and an example.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from hwsearch.errors import BudgetError

UNITS = {
    "": 1, "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30,
}
SECONDS = {"S": 1.0, "MS": 1e-3, "US": 1e-6, "ΜS": 1e-6, "NS": 1e-9}      # ΜS: "µs" upper-cased
JOULES = {"J": 1.0, "MJ": 1e-3, "UJ": 1e-6, "ΜJ": 1e-6, "NJ": 1e-9}
_NUMBER = re.compile(r"^\s*([-+]?)([0-9]+(?:\.[0-9]+)?)\s*([A-Za-zµ]*)\s*$", re.ASCII)


def _shown(text: str, limit: int = 32) -> str:
    """The input as a message quotes it: whole if short, else its start and its length."""
    return repr(text) if len(text) <= limit else f"'{repr(text[:limit])[1:-1]}...' ({len(text)} characters)"


def _ascii_digits(text: str) -> str | None:
    """`２０KB` -> `20KB`: the text with other scripts' digits made ASCII, or None if it has none."""
    if not any(ch.isdecimal() and not ch.isascii() for ch in text):
        return None
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() and not ch.isascii() else ch for ch in text)


def _match(text: str, flag: str) -> re.Match | None:
    ascii_form = _ascii_digits(text)
    if ascii_form is not None:
        raise BudgetError(f"{flag} {_shown(text)} has digits that are not ASCII 0-9: write it as {_shown(ascii_form)}")
    return _NUMBER.match(text)


def parse_size(text: str) -> int:
    """Parse a size budget into bytes: `10MB`, `10MiB`, `500KB`, `1.5GB`, `10000000`."""
    match = _match(text, "budget")
    unit = match.group(3).upper() if match else None
    if match is None or unit not in UNITS:
        raise BudgetError(
            f"budget {_shown(text)} is not a size: write a number with an optional unit "
            "B, KB, MB, GB (powers of 10) or KiB, MiB, GiB (powers of 2), e.g. 10MB or 500KB")
    if match.group(1) == "-":
        raise BudgetError(f"budget {_shown(text)} is negative: it must be a positive size, e.g. 10MB")
    value = float(match.group(2)) * UNITS[unit]
    if not math.isfinite(value) or value > 10**15:
        raise BudgetError(f"budget {_shown(text)} is larger than any file hwsearch writes (1 PB): give a real size, "
                          "e.g. 10MB")
    size = int(value)
    if size <= 0:
        raise BudgetError(f"budget {_shown(text)} is {size} bytes: it must be a positive size, e.g. 10MB")
    return size


def _parse_quantity(text: str, units: dict[str, float], flag: str, names: str, example: str) -> float:
    match = _match(text, flag)
    unit = match.group(3).upper() if match else None
    if match is None or unit not in units:
        what = "a latency" if flag == "--latency" else "an energy"
        raise BudgetError(f"{flag} {_shown(text)} is not {what}: write a number with a unit ({names}), e.g. {example}")
    value = float(match.group(2)) * units[unit]
    if match.group(1) == "-" or not math.isfinite(value) or value <= 0:
        raise BudgetError(f"{flag} {_shown(text)} must be a positive amount, e.g. {example}")
    return value


def parse_latency(text: str) -> float:
    """Seconds per inference: `5ms`, `250us`, `1.5s`."""
    return _parse_quantity(text, SECONDS, "--latency", "s, ms, us, ns", "5ms or 250us")


def parse_energy(text: str) -> float:
    """Joules per inference: `2mJ`, `500uJ`."""
    return _parse_quantity(text, JOULES, "--energy", "J, mJ, uJ, nJ", "2mJ or 500uJ")


def format_size(n_bytes: int) -> str:
    """Human form in SI units, matching how budgets are usually written."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes} B"


def format_seconds(value: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if value >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value / 1e-9:.4g} ns"


def format_joules(value: float) -> str:
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6)):
        if value >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value / 1e-9:.4g} nJ"


@dataclass(frozen=True)
class Budgets:
    """The hard constraints of a search; None where the user set none. Keys as the cost table names them."""
    size_bytes: int | None = None
    latency_s: float | None = None
    energy_j: float | None = None

    @classmethod
    def parse(cls, *, size: str | None = None, latency: str | None = None, energy: str | None = None) -> "Budgets":
        budgets = cls(parse_size(size) if size else None, parse_latency(latency) if latency else None,
                      parse_energy(energy) if energy else None)
        if not budgets.limits():
            raise BudgetError("no budget given: pass --budget (e.g. 10MB), --latency (e.g. 5ms) or --energy "
                              "(e.g. 2mJ), or several")
        return budgets

    def limits(self) -> dict[str, float]:
        """{"size_bytes": ..., ...} for the budgets that are set."""
        return {key: value for key, value in (("size_bytes", self.size_bytes), ("latency_s", self.latency_s),
                                              ("energy_j", self.energy_j)) if value is not None}

    def excess(self, totals: dict[str, float]) -> dict[str, float]:
        """Per budget, how far a plan's totals are over it (<= 0: within); the trial's constraints."""
        return {key: totals[key] - limit for key, limit in self.limits().items()}

    def describe(self, key: str, value: float | None = None) -> str:
        value = self.limits()[key] if value is None else value
        return {"size_bytes": lambda v: f"{format_size(int(v))} ({int(v):,} bytes)",
                "latency_s": format_seconds, "energy_j": format_joules}[key](value)

    def label(self) -> str:
        """Short label for run folders: `10MB`, `5ms`, `10MB-5ms`."""
        parts = []
        if self.size_bytes is not None:
            parts.append(format_size(self.size_bytes).replace(" ", "").replace(".00", ""))
        if self.latency_s is not None:
            parts.append(format_seconds(self.latency_s).replace(" ", ""))
        if self.energy_j is not None:
            parts.append(format_joules(self.energy_j).replace(" ", ""))
        return "-".join(parts)

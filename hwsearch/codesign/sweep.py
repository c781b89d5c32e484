"""Sweeps of a target's parameters for `hwsearch codesign`: `--sweep KEY=VALUES`, and the grid they make.

KEY is a dotted path to a numeric field of the target YAML, with list items by index or
by name (`memory.glb.size_bytes`, `compute.0.macs_per_cycle`, `dram.bandwidth_bytes_per_s`),
or an alias for what an architect sweeps on an accelerator:

    glb_kb    the outermost on-chip buffer (the global buffer) in KiB: glb_kb=64 is 65,536 bytes
    pe        the PE array, one factor per unroll dimension: pe=12x14 (a 2-D array), pe=16x8x8;
              the peak MACs per cycle and every per-PE memory (count and bandwidth) scale with it

VALUES is a comma-separated list of numbers and ranges: `64,128,256`, `64:512:x2` (geometric:
64, 128, 256, 512), `0.5:2:+0.5` (arithmetic); `pe` takes shapes (`12x14,16x16`). Several
sweeps make a grid (their product). Every point is built and validated as a target before
anything runs, and every problem is reported in one SweepError or TargetError.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field

from cost_models.target import Target, load_raw_target, resolve_field, validate_target, with_fields
from hwsearch.errors import HwsearchError

MAX_POINTS = 1000     # per sweep and per grid: a sweep beyond it is a typo more often than a plan

_NUMBER = r"[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?"
_RANGE = re.compile(rf"^({_NUMBER}):({_NUMBER}):([x+])({_NUMBER})$")
_SHAPE = re.compile(r"^[0-9]+(?:x[0-9]+)+$")
_KEY = re.compile(r"^[A-Za-z0-9_]+(?:\.[A-Za-z0-9_-]+)*$")
EXAMPLES = "e.g. glb_kb=64,128,256, pe=12x14,16x16 or memory.glb.size_bytes=65536:262144:x2"


class SweepError(HwsearchError):
    """A `--sweep` spec that cannot be parsed, or that does not fit the target."""


@dataclass(frozen=True)
class Sweep:
    """One swept parameter: its key as written and its values (numbers, or tuples of ints for `pe`)."""
    key: str
    values: tuple

    @classmethod
    def parse(cls, text: str) -> "Sweep":
        """`KEY=VALUES` -> Sweep; SweepError with the rule and an example otherwise."""
        key, sep, spec = text.partition("=")
        key, spec = key.strip(), spec.strip()
        if not sep or not key or not spec:
            raise SweepError(f"--sweep {text!r} is not KEY=VALUES: {EXAMPLES}")
        if not _KEY.match(key):
            raise SweepError(f"--sweep {text!r}: {key!r} is not a parameter name or dotted path: {EXAMPLES}")
        values: list = []
        for item in spec.split(","):
            item = item.strip()
            values.extend(_shape(text, item) if key == "pe" else _numbers(text, item))
            if len(values) > MAX_POINTS:
                raise SweepError(f"--sweep {text!r} gives more than {MAX_POINTS} values: narrow the ranges")
        seen = set()
        for value in values:
            if value in seen:
                raise SweepError(f"--sweep {text!r} lists {format_value(value)} twice: give each value once")
            seen.add(value)
        return cls(key, tuple(values))


def _shape(text: str, item: str) -> list[tuple[int, ...]]:
    if not _SHAPE.match(item):
        raise SweepError(f"--sweep {text!r}: pe takes PE array shapes such as 12x14 or 16x8x8 (one factor per "
                         f"unroll dimension), not {item!r}")
    shape = tuple(int(n) for n in item.split("x"))
    if min(shape) < 1:
        raise SweepError(f"--sweep {text!r}: every factor of a PE array shape is at least 1, got {item!r}")
    return [shape]


def _numbers(text: str, item: str) -> list[float | int]:
    """A number, or a range start:stop:xFACTOR (geometric) or start:stop:+STEP (arithmetic), stop included."""
    if re.fullmatch(_NUMBER, item):
        if not math.isfinite(float(item)):
            raise SweepError(f"--sweep {text!r}: {item!r} is too large to be a number")
        return [int(item) if item.isdigit() else _tidy(float(item))]
    match = _RANGE.match(item)
    if match is None:
        raise SweepError(f"--sweep {text!r}: {item!r} is neither a non-negative number nor a range "
                         "start:stop:xFACTOR (geometric, e.g. 64:512:x2) or start:stop:+STEP (arithmetic, e.g. "
                         "0:64:+16)")
    start, stop, kind, step = _parse(match[1]), _parse(match[2]), match[3], _parse(match[4])
    if not all(math.isfinite(v) for v in (start, stop, step)):
        raise SweepError(f"--sweep {text!r}: {item!r} has a number too large to be one")
    if stop < start:
        raise SweepError(f"--sweep {text!r}: range {item!r} must run upwards: start <= stop")
    if kind == "x" and (start <= 0 or step <= 1):
        raise SweepError(f"--sweep {text!r}: geometric range {item!r} needs start > 0 and a factor > 1")
    if kind == "+" and step <= 0:
        raise SweepError(f"--sweep {text!r}: arithmetic range {item!r} needs a step > 0")
    exact = all(isinstance(v, int) for v in (start, stop, step))     # integers: integer arithmetic, no rounding
    values: list[float | int] = []
    while len(values) <= MAX_POINTS:
        i = len(values)
        if exact:
            value = int(start) * int(step) ** i if kind == "x" else int(start) + int(step) * i
            if value > stop:
                return values
        else:
            value = start * step ** i if kind == "x" else start + step * i
            if value > stop * (1 + 1e-12):
                return values
            value = _tidy(value)
        values.append(value)
    raise SweepError(f"--sweep {text!r}: range {item!r} gives more than {MAX_POINTS} values: widen the step or "
                     "narrow the range")


def _parse(number: str) -> float | int:
    """Digits only: an int, exact at any size; anything else a float."""
    value = int(number) if number.isdigit() else float(number)
    return value if value < 1e300 else math.inf      # larger is a typo; inf is refused by the caller


def _tidy(value: float) -> float | int:
    """15 significant digits (0.1 x 3 is 0.3), and an int where the value is whole."""
    value = float(f"{value:.15g}")
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def format_value(value) -> str:
    """64, 0.5, 7.2e+08, 12x14: how a swept value is written back (short where that is still exact)."""
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    short = f"{value:g}"
    return short if float(short) == value else str(value)


@dataclass(frozen=True)
class Point:
    """One hardware point of the grid: the swept values, the fields they set and the validated target."""
    id: str                                  # p01, p02, ...: the point's run folder
    params: dict                             # sweep key -> value, in sweep order
    fields: dict[str, float]                 # canonical dotted path -> value set in the target YAML
    target: Target
    data: dict = field(repr=False)           # its YAML data, written beside the point's run

    @property
    def label(self) -> str:
        return ", ".join(f"{key}={format_value(value)}" for key, value in self.params.items())


def build_grid(target: str, sweeps: list[Sweep]) -> list[Point]:
    """Every point of the product of `sweeps` on `target`, each validated as a target.

    Raises one SweepError (or TargetError for the base file) listing every problem found.
    """
    if not sweeps:
        raise SweepError(f"codesign needs at least one --sweep, {EXAMPLES}")
    keys = [s.key for s in sweeps]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise SweepError(f"--sweep {repeated[0]} is given twice: list all its values in one --sweep")
    data, base = load_raw_target(target)
    count = math.prod(len(s.values) for s in sweeps)
    if count > MAX_POINTS:
        raise SweepError(f"the sweeps make {count:,} points, more than {MAX_POINTS}: use fewer values")
    resolvers = [_resolver(s.key, data, base) for s in sweeps]
    touched: dict[str, str] = {}
    for sweep, resolve in zip(sweeps, resolvers):
        for path in resolve(sweep.values[0]):
            if path in touched:
                raise SweepError(f"--sweep {sweep.key} and --sweep {touched[path]} both set {path}: sweep it once")
            touched[path] = sweep.key
    points, problems = [], []
    width = max(2, len(str(count)))
    for index, combo in enumerate(itertools.product(*(s.values for s in sweeps)), start=1):
        params = dict(zip(keys, combo))
        fields: dict[str, float] = {}
        label = ", ".join(f"{k}={format_value(v)}" for k, v in params.items())
        try:
            for resolve, value in zip(resolvers, combo):
                fields.update(resolve(value))
            source = f"{base.name} with {label}"
            point_data = with_fields(data, fields, source=source, name=f"{base.name}[{label.replace(' ', '')}]")
            point_target = validate_target(point_data, source=source)
        except HwsearchError as exc:
            problems.append(str(exc))
            continue
        points.append(Point(f"p{index:0{width}d}", params, fields, point_target, point_data))
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more points" if len(problems) > 3 else "")
        raise SweepError(f"{len(problems)} of {count} hardware points are not valid targets: {shown}")
    return points


def _resolver(key: str, data: dict, base: Target):
    """value -> {canonical dotted path: number} for one sweep key (an alias or a dotted path)."""
    if key == "glb_kb":
        return _glb_kb(base)
    if key == "pe":
        return _pe(base)
    try:
        path, _ = resolve_field(data, key)
    except HwsearchError as exc:
        raise SweepError(f"--sweep {exc} (or an alias: glb_kb, pe)") from None
    return lambda value: {path: value}


def _glb_kb(base: Target):
    if base.kind != "accelerator":
        raise SweepError(f"--sweep glb_kb sets an accelerator's global buffer; {base.name} is a {base.kind}: sweep "
                         f"a level by its path instead, e.g. memory.{base.memory[-1].name}.size_bytes")
    index, level = len(base.memory) - 1, base.memory[-1]
    if level.instances > 1:
        raise SweepError(f"--sweep glb_kb: {base.name}'s outermost level {level.name} has {level.instances} "
                         f"copies, not one global buffer: sweep memory.{level.name}.size_bytes instead")
    return lambda kib: {f"memory.{index}.size_bytes": kib * 1024}


def _pe(base: Target):
    """The PE array's shape: unroll sizes on every compute path, the peak scaled with the MAC count, and
    every memory private to unroll dimensions given one copy per lane, its total bandwidth scaled alike."""
    dims = [tuple(u.name for u in path.unroll) for path in base.compute]
    if base.kind != "accelerator" or not dims[0] or len(set(dims)) != 1:
        raise SweepError(f"--sweep pe sets the PE array of an accelerator whose compute paths share one unroll; "
                         f"{base.name} has {'none' if not dims[0] else 'different ones per path'}: sweep "
                         "compute.N.macs_per_cycle instead")
    names = dims[0]
    old = {u.name: u.size for u in base.compute[0].unroll}

    def resolve(shape: tuple[int, ...]) -> dict[str, float]:
        if len(shape) != len(names):
            raise SweepError(f"pe={format_value(shape)}: {base.name}'s PE array has {len(names)} dimensions "
                             f"({', '.join(names)}), so give {len(names)} factors, e.g. "
                             f"pe={'x'.join(str(old[n]) for n in names)}")
        new = dict(zip(names, shape))
        fields: dict[str, float] = {}
        for i, path in enumerate(base.compute):
            for j, size in enumerate(shape):
                fields[f"compute.{i}.unroll.{j}.size"] = size
            ratio = math.prod(shape) / math.prod(u.size for u in path.unroll)
            fields[f"compute.{i}.macs_per_cycle"] = _tidy(path.macs_per_cycle * ratio)
        for i, level in enumerate(base.memory):
            if level.private_to:
                copies = math.prod(new[n] for n in level.private_to)
                fields[f"memory.{i}.instances"] = copies
                fields[f"memory.{i}.bandwidth_bytes_per_cycle"] = _tidy(
                    level.bandwidth_bytes_per_cycle * copies / level.instances)
        return fields
    return resolve

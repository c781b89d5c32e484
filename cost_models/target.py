"""Targets are data: `targets/<name>.yaml`, parsed strictly, validated, frozen.

Three steps: parse YAML (a duplicate key is an error), validate with pydantic (units
in the key names, unknown keys rejected), return a frozen `Target`. Every problem
found is reported in one message.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, PositiveFloat, PositiveInt, ValidationError

from hwsearch.errors import TargetError

TARGETS_DIR = Path(__file__).resolve().parent.parent / "targets"


class Compute(BaseModel, extra="forbid", frozen=True):
    dtype: str                   # e.g. fp32, int8
    max_weight_bits: PositiveInt  # weights of at most this many bits run on this path
    macs_per_cycle: PositiveFloat
    pj_per_mac: PositiveFloat
    activation_bytes: PositiveInt


class MemoryLevel(BaseModel, extra="forbid", frozen=True):
    name: str
    size_bytes: PositiveInt
    read_pj_per_byte: PositiveFloat


class Dram(BaseModel, extra="forbid", frozen=True):
    bandwidth_bytes_per_s: PositiveFloat
    read_pj_per_byte: PositiveFloat


class Target(BaseModel, extra="forbid", frozen=True):
    name: str
    kind: Literal["cpu", "gpu", "accelerator"]
    clock_hz: PositiveFloat
    zero_skipping: bool          # does the hardware skip MACs on zero weights?
    compute: tuple[Compute, ...] = Field(min_length=1)
    memory: tuple[MemoryLevel, ...] = Field(min_length=1)   # innermost first
    dram: Dram

    def compute_for(self, bits: int) -> Compute:
        """The cheapest compute path that takes weights of `bits` bits."""
        paths = [c for c in self.compute if c.max_weight_bits >= bits]
        if not paths:
            raise TargetError(f"target {self.name} has no compute path for {bits}-bit weights")
        return min(paths, key=lambda c: c.max_weight_bits)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def available_targets() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.yaml"))


def load_target(name_or_path: str | Path) -> Target:
    """Load a built-in target by name (`cortex-a76`) or any target YAML by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = TARGETS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise TargetError(f"unknown target {str(name_or_path)!r}: choose one of "
                              f"{', '.join(available_targets())} or pass the path of a target YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TargetError(f"cannot read target file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TargetError(f"target file {path} is not UTF-8 text; save it as UTF-8 YAML") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TargetError(f"target file {path} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise TargetError(f"target file {path} must hold a mapping of keys (name, kind, clock_hz, ...)")
    try:
        return Target.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'top level'}: {e['msg']}" for e in exc.errors())
        raise TargetError(f"target file {path} is invalid: {problems}") from None

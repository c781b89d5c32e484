"""Targets are data: `targets/<name>.yaml`, parsed strictly, validated, frozen.

Three steps: parse YAML (a duplicate key is an error), validate with pydantic (units
in the key names, unknown keys rejected), return a frozen `Target`. Every problem
found is reported in one message.

A target describes what the cost model needs and nothing else:

    compute      datapaths (fp32, int8, ...): peak MACs per cycle, energy per MAC, the
                 operand widths, and how the MACs spread over the loop dimensions
                 (vector lanes, a PE array): what a layer's shape leaves idle
    memory       on-chip levels, innermost first: size, bandwidth, energy per byte,
                 the operands each holds (W weights, I inputs, O outputs)
    dram         bandwidth and energy per byte
    sparsity     whether the hardware skips zero weights (and from what sparsity)
    cpu / gpu    kernel-level figures of a CPU or GPU runtime (calibrated, cited)

About 430 lines because the file format is one contract kept in one place: the pydantic models
of every key, the strict YAML parser and the plausibility checks that name a bad value.
"""
from __future__ import annotations

import copy
import difflib
import math
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (AfterValidator, BaseModel, Field, NonNegativeFloat, PositiveFloat, PositiveInt, ValidationError,
                      field_validator, model_validator)

from hwsearch.errors import TargetError

TARGETS_DIR = Path(__file__).resolve().parent.parent / "targets"

LoopDim = Literal["B", "G", "K", "C", "OY", "OX", "FY", "FX"]
Operand = Literal["W", "I", "O"]


# No figure of real hardware is this large in the units the keys name (Hz, bytes, bytes per
# second, pJ, seconds): a number above it is a typo, and would print 300-digit latencies.
# (Tiny figures are legitimate where a fit drove a term to zero; the clock and the bandwidths
# have ranges of their own below.)
LARGEST = 1e15


def _figure(value: float | int) -> str:
    """A number as a message quotes it: 1e+300, 4096, or the size of an integer too large for a float."""
    try:
        return f"{float(value):g}"
    except OverflowError:
        return f"an integer of {value.bit_length()} bits"


def _plausible(low: float, high: float, unit: str):
    """A float field that must lie in [low, high] `unit`: real hardware, not a typo."""
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"{_figure(value)} {unit} is not a plausible figure: give a number between {low:g} and "
                             f"{high:g} {unit}")
        return value
    return AfterValidator(check)


Hertz = Annotated[float, _plausible(1e3, 1e11, "Hz")]                   # 1 kHz .. 100 GHz
BytesPerSecond = Annotated[float, _plausible(1e3, 1e15, "bytes/s")]    # 1 kB/s .. 1 PB/s
MemoryBytes = Annotated[int, _plausible(1, 2**40, "bytes")]            # up to 1 TiB per level


class _Frozen(BaseModel, extra="forbid", frozen=True):
    """Every target section: unknown keys are errors, values are immutable, finite and of a plausible size."""

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > LARGEST:
            raise ValueError(f"{_figure(value)} is not a plausible figure in this key's unit: give a number below "
                             f"{LARGEST:g}")
        return value


class Unroll(_Frozen):
    """One dimension of the parallel hardware (vector lanes, a row of PEs) and the loop
    dimensions it may take, in order of preference; a layer whose dimensions are
    smaller than `size` leaves lanes idle."""
    name: str = ""                     # e.g. "rows"; memories private to a unroll dimension name it
    size: PositiveInt
    dims: tuple[LoopDim, ...] = Field(min_length=1)


class Compute(_Frozen):
    dtype: str                         # e.g. fp32, fp16, int8
    max_weight_bits: PositiveInt       # weights of at most this many bits run on this path
    operand_bits: PositiveInt          # width of weights as the datapath multiplies them
    activation_bytes: PositiveInt      # width of activations on this path
    accumulator_bytes: PositiveInt = 4  # width of partial sums
    macs_per_cycle: PositiveFloat      # peak of the whole target on this path
    pj_per_mac: PositiveFloat
    unpack_cycles_per_weight: NonNegativeFloat = 0.0   # widening weights stored narrower than operand_bits
    # CPU and GPU runtimes: how this path's kernels compare with the target's kernel figures (int8 kernels
    # are often less tuned than float ones): a factor on them, and its own depthwise share of peak
    kernel_efficiency: float = Field(1.0, gt=0.0, le=1.0)
    depthwise_efficiency: float | None = Field(None, gt=0.0, le=1.0)
    unroll: tuple[Unroll, ...] = ()    # how macs_per_cycle spreads over loop dimensions


class MemoryLevel(_Frozen):
    name: str
    size_bytes: MemoryBytes            # per instance
    instances: PositiveInt = 1         # private copies (one per PE, per SM); capacity adds up
    bandwidth_bytes_per_cycle: PositiveFloat   # all instances together, towards the datapath
    read_pj_per_byte: NonNegativeFloat
    write_pj_per_byte: NonNegativeFloat
    operands: tuple[Operand, ...] = ("W", "I", "O")
    private_to: tuple[str, ...] = ()   # unroll dimensions with one copy per lane (a PE's own scratchpad)

    @property
    def capacity_bytes(self) -> int:
        return self.size_bytes * self.instances


class Dram(_Frozen):
    bandwidth_bytes_per_s: BytesPerSecond
    read_pj_per_byte: PositiveFloat
    write_pj_per_byte: PositiveFloat


class Sparsity(_Frozen):
    """What the hardware does with zero weights. Storage and traffic always shrink by the
    file's encoding; compute shrinks only as declared here."""
    skips: Literal["none", "unstructured"] = "none"
    min_sparsity: float = Field(0.0, ge=0.0, lt=1.0)    # sparse kernels pay off only from this sparsity
    skip_efficiency: float = Field(1.0, gt=0.0, le=1.0)  # share of the zero MACs actually skipped
    structured_2_4: bool = False       # 2:4 structured sparsity at 2x (Ampere, Hopper tensor cores)
    zero_gating: bool = False          # zero operands gate the MAC: energy saved, no cycles saved


class Winograd(_Frozen):
    """Winograd F(m x m, 3 x 3) for 3x3 stride-1 convolutions (Lavin and Gray 2016)."""
    output_tile: PositiveInt           # m: outputs per tile side
    min_channels: PositiveInt          # used when both input and output channels reach this
    efficiency: float = Field(gt=0.0, le=1.0)   # share of the ideal multiply saving realised


class CpuKernels(_Frozen):
    """How a CPU runtime's kernels fall short of peak, by layer shape."""
    gemm_efficiency: float = Field(gt=0.0, le=1.0)        # 1x1 convs, linear layers, matmuls: share of peak
    conv_efficiency: float | None = Field(None, gt=0.0, le=1.0)   # k x k convs off Winograd; None: as GEMM
    depthwise_efficiency: float = Field(gt=0.0, le=1.0)   # depthwise convolutions and pooling, share of peak
    register_tile: tuple[PositiveInt, PositiveInt]        # (positions, channels) of the micro-kernel
    reduction_overhead: NonNegativeFloat                  # MAC steps lost per micro-kernel call
    layer_overhead_s: NonNegativeFloat                    # fixed cost of one layer (dispatch, packing)
    winograd: Winograd | None = None
    skips_padding: bool = False       # direct kernels skip filter taps that meet only padding (small maps)
    weight_reorder_passes: NonNegativeFloat = 0.0   # passes over the weights to repack them on every call


class GpuKernels(_Frozen):
    """How a GPU runtime's kernels fall short of peak at small batch."""
    sms: PositiveInt                                   # streaming multiprocessors (or shader cores)
    block_tile: tuple[PositiveInt, PositiveInt]        # (positions, channels) one thread block computes
    gemm_efficiency: float = Field(gt=0.0, le=1.0)
    depthwise_efficiency: float = Field(gt=0.0, le=1.0)
    layer_overhead_s: NonNegativeFloat                 # kernel launch and tail per layer


class Target(_Frozen):
    name: str
    kind: Literal["cpu", "gpu", "accelerator"]
    description: str = ""
    runtime: str = ""                  # the software whose kernels the cpu or gpu figures describe
    clock_hz: Hertz
    compute: tuple[Compute, ...] = Field(min_length=1)
    memory: tuple[MemoryLevel, ...] = Field(min_length=1)   # innermost first
    dram: Dram
    activations_stay_on_chip: bool = True   # a layer reads its input from the last level when it fits there
    fuses_activations: bool = True     # batch norm and activations after a layer cost nothing extra (folded)
    # encoded: weights move as the file stores them (sparse encoding, sub-byte codes), widened next to the
    # datapath; dense: the runtime expands them once at load into dense tensors of the path's width
    weights_move: Literal["encoded", "dense"] = "encoded"
    # changing an activation's width between layers on different paths (quantise, dequantise, and any
    # layout change the int8 kernels need): elementwise passes over the tensor per change
    conversion_passes: NonNegativeFloat = 1.0
    # a float layer beside a layer of another width loses this share of its own time again (runtimes that
    # then run it with other kernels or layouts: onnxruntime leaves its blocked NCHWc kernels)
    mixed_float_penalty: NonNegativeFloat = 0.0
    sparsity: Sparsity = Sparsity()
    cpu: CpuKernels | None = None
    gpu: GpuKernels | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Target":
        problems = []
        if self.kind == "cpu" and self.cpu is None:
            problems.append("a cpu target needs a 'cpu' section (kernel efficiencies)")
        if self.kind == "gpu" and self.gpu is None:
            problems.append("a gpu target needs a 'gpu' section (SMs, block tile, efficiencies)")
        if self.kind != "cpu" and self.cpu is not None or self.kind != "gpu" and self.gpu is not None:
            problems.append(f"a {self.kind} target takes no {'cpu' if self.cpu else 'gpu'} section")
        names = [level.name for level in self.memory]
        if len(set(names)) != len(names) or "dram" in names:
            problems.append(f"memory level names must be distinct and not 'dram', got {names}")
        for operand in ("W", "I", "O"):
            if not any(operand in level.operands for level in self.memory):
                problems.append(f"no memory level holds operand {operand}")
        for path in self.compute:
            names = [u.name for u in path.unroll]
            for level in self.memory:
                unknown = [d for d in level.private_to if d not in names]
                if unknown:
                    problems.append(f"memory level {level.name} is private_to {unknown}, not an unroll name of "
                                    f"compute path {path.dtype} ({names})")
                elif level.private_to and level.instances != math.prod(
                        u.size for u in path.unroll if u.name in level.private_to):
                    problems.append(f"memory level {level.name}: instances must equal the product of the sizes of "
                                    f"{list(level.private_to)}")
        if not any(path.max_weight_bits >= 32 for path in self.compute):
            problems.append("no compute path takes 32-bit (float) weights, which every model's uncompressed layers "
                            "have: give one compute entry max_weight_bits: 32 (or more)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def compute_for(self, bits: int) -> Compute:
        """The path that runs weights of `bits` bits: the narrowest that takes them."""
        paths = [c for c in self.compute if c.max_weight_bits >= bits]
        if not paths:
            raise TargetError(f"target {self.name} has no compute path for {bits}-bit weights: add one to its "
                              f"'compute' list with max_weight_bits >= {bits}")
        return min(paths, key=lambda c: c.max_weight_bits)

    def compute_index(self, bits: int) -> int:
        return self.compute.index(self.compute_for(bits))

    @property
    def levels(self) -> list[str]:
        """Memory level names, innermost first, then dram."""
        return [level.name for level in self.memory] + ["dram"]


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


def target_path(name_or_path: str | Path) -> Path:
    """The file of a built-in target name (`cortex-a76`) or of a path to a target YAML."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return path
    path = TARGETS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        close = difflib.get_close_matches(str(name_or_path), available_targets(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise TargetError(f"unknown target {str(name_or_path)!r}: {hint}choose one of "
                          f"{', '.join(available_targets())} or pass the path of a target YAML file")
    return path


def load_target(name_or_path: str | Path) -> Target:
    """Load a built-in target by name (`cortex-a76`) or any target YAML by path."""
    return read_target(name_or_path)[0]


def read_target(name_or_path: str | Path) -> tuple[Target, str]:
    """`load_target`, and the file's text: a run records it, so that resuming it or a worker joining it
    prices on the same target even if the file changes."""
    path = target_path(name_or_path)
    text = _read(path)
    return parse_target(text, source=str(path)), text


def parse_target(text: str, *, source: str = "<string>") -> Target:
    """Parse and validate the text of a target YAML; `source` names it in error messages."""
    return validate_target(parse_yaml(text, source=f"target file {source}"), source=f"target file {source}")


TARGET_KEYS = "(name, kind, clock_hz, compute, memory, dram)"


def parse_yaml(text: str, *, source: str, keys: str = TARGET_KEYS, whose: str = "the target's",
               example: str = "targets/cortex-a76.yaml") -> dict:
    """A YAML mapping, parsed strictly (a duplicate key is an error); `source` names it in error messages."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TargetError(f"{source} is not valid YAML{where}: {problem}") from None
    if data is None:
        raise TargetError(f"{source} is empty; write {whose} keys {keys}, e.g. copy {example}")
    if not isinstance(data, dict):
        raise TargetError(f"{source} holds a {type(data).__name__}, not a mapping of keys {keys}; see {example}")
    return data


def validate_target(data: dict, *, source: str) -> Target:
    """The frozen `Target` of parsed YAML data; every problem pydantic finds in one TargetError."""
    try:
        return Target.model_validate(data)
    except ValidationError as exc:
        raise TargetError(f"{source} is invalid: {_problems(exc.errors())}") from None


def _problems(errors: list[dict]) -> str:
    """Pydantic's errors as `key.path: what is wrong`, one per problem, without the echoes.

    A list whose only item is invalid is also reported "too short" by pydantic: that
    follows from the item's own error and is dropped.
    """
    locs = [tuple(e["loc"]) for e in errors]
    kept = [e for e in errors if not (e["type"] == "too_short" and any(
        len(other) > len(e["loc"]) and other[:len(e["loc"])] == tuple(e["loc"]) for other in locs))]
    return "; ".join(((".".join(map(str, e["loc"])) + ": ") if e["loc"] else "")
                     + e["msg"].removeprefix("Value error, ") for e in kept)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TargetError(f"cannot read target file {path}: {exc.strerror}; check the path") from None
    except UnicodeDecodeError:
        raise TargetError(f"target file {path} is not UTF-8 text; save it as UTF-8 YAML") from None


# ---- variants of a target: numeric fields set by dotted path (hwsearch codesign) -----------------------

def load_raw_target(name_or_path: str | Path) -> tuple[dict, Target]:
    """A target's YAML data as parsed (to derive variants from) and the validated target itself."""
    path = target_path(name_or_path)
    data = parse_yaml(_read(path), source=f"target file {path}")
    return data, validate_target(data, source=f"target file {path}")


def resolve_field(data: dict, dotted: str) -> tuple[str, float]:
    """The canonical path (list items by index) and the current value of a dotted path into target data.

    Mapping keys by name; list items by index or by the `name` (memory levels, unroll
    dimensions) or `dtype` (compute paths) they carry: `memory.glb.size_bytes`,
    `compute.fixed16.unroll.rows.size`, `compute.0.macs_per_cycle`, `dram.bandwidth_bytes_per_s`.
    The field must exist and hold a number.
    """
    node, canonical = data, []
    for i, part in enumerate(dotted.split(".")):
        where = ".".join(canonical) or "the top level"
        if isinstance(node, dict):
            if part not in node:
                close = difflib.get_close_matches(part, [str(k) for k in node], n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise TargetError(f"{dotted}: {where} has no key {part!r}; {hint}keys there: "
                                  f"{', '.join(map(str, node))}")
            node = node[part]
            canonical.append(part)
        elif isinstance(node, list):
            names = [item.get("name", item.get("dtype")) if isinstance(item, dict) else None for item in node]
            if part.isdigit() and int(part) < len(node):
                index = int(part)
            elif part in names:
                index = names.index(part)
            else:
                known = ", ".join(str(n) for n in names if n is not None)
                raise TargetError(f"{dotted}: {where} is a list of {len(node)}; address an item by index 0 to "
                                  f"{len(node) - 1}" + (f" or by name ({known})" if known else "") + f", not {part!r}")
            node = node[index]
            canonical.append(str(index))
        else:
            raise TargetError(f"{dotted}: {where} is the value {node!r}, which has no field {part!r}")
    value = _number(node)
    if value is None:
        kind = "a section" if isinstance(node, (dict, list)) else f"{node!r}"
        raise TargetError(f"{dotted} is {kind}, not a number: only numeric fields can be swept")
    return ".".join(canonical), value


def _number(node) -> float | None:
    """A YAML scalar as a number, or None. PyYAML reads `2.0e8` (no sign in the exponent) as text, which
    pydantic then takes as a float, so numeric text counts as a number here too."""
    if isinstance(node, bool):
        return None
    if isinstance(node, (int, float)):
        return node
    if isinstance(node, str):
        try:
            return float(node)
        except ValueError:
            return None
    return None


def with_fields(data: dict, values: dict[str, float], *, source: str, name: str | None = None) -> dict:
    """A copy of target YAML `data` with numeric fields set by dotted path (and a new name); every
    path that does not lead to a numeric field is reported in one TargetError naming `source`."""
    data = copy.deepcopy(data)
    problems = []
    for dotted, value in values.items():
        try:
            canonical, _ = resolve_field(data, dotted)
        except TargetError as exc:
            problems.append(str(exc))
            continue
        *parents, leaf = canonical.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        # integral values go in as ints, so that integer fields (sizes, counts) take them
        node[int(leaf) if isinstance(node, list) else leaf] = int(value) if float(value).is_integer() else float(value)
    if problems:
        raise TargetError(f"{source}: " + "; ".join(problems))
    if name is not None:
        data["name"] = name
    return data


def override_target(data: dict, values: dict[str, float], *, source: str, name: str | None = None) -> Target:
    """`with_fields`, validated with the same models as a target file (every problem in one TargetError)."""
    return validate_target(with_fields(data, values, source=source, name=name), source=source)

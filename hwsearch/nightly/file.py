"""The nightly file: a matrix of searches, parsed and checked whole before anything runs.

    results: results/nightly        # where the run folders and nightly.json go (this default if left out)
    defaults:                       # any entry key, for every entry that does not set it
      trials: 300
    entries:
      - name: a76-10MB              # the run folder; default <model>-<target>-<budgets>
        model: resnet18_digits
        target: cortex-a76
        budget: 10MB
      - model: lenet5_digits        # a list in model, target, budget, latency or energy runs every
        target: [cortex-a76, eyeriss-like]          combination, each named by default
        budget: [20KB, 50KB]

Entry keys are the search's flags, with the same defaults: name, model, data, input, eval,
loss, target, budget, latency, energy, objectives, sampler, max_accuracy_drop, proxy, grid,
structured, classifier, trials, top_k, finetune_epochs, calibration, seed, data_dir, device,
finetune_steps. The whole file
is checked before anything runs (every problem in one NightlyError naming the entry).
"""
from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from hwsearch.budget import Budgets
from hwsearch.config import RunConfig, check
from hwsearch.errors import HwsearchError

MATRIX_KEYS = ("model", "target", "budget", "latency", "energy")    # keys that may hold a list
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
# entry keys -> RunConfig fields where they differ
FIELDS = {"calibration": "calibration_size"}
# settings that do not change a run's result, left out when an earlier run folder is compared with an entry
NOT_SETTINGS = ("results_dir", "run_id", "cache_dir", "data_dir")


class NightlyError(HwsearchError):
    """A nightly file that cannot be read or holds an entry no run can use."""


class _Settings(BaseModel, extra="forbid"):
    model: str | list[str] | None = None
    data: str | None = None
    input: str | None = None
    eval: str | None = None
    loss: str | None = None
    target: str | list[str] | None = None
    budget: str | list[str] | None = None
    latency: str | list[str] | None = None
    energy: str | list[str] | None = None
    objectives: str | None = None
    sampler: str | None = None
    max_accuracy_drop: float | None = None
    proxy: Literal["weighted", "sum"] | None = None
    grid: Literal["classic", "default", "full"] | None = None
    structured: bool | None = None
    classifier: Literal["gap"] | None = None
    trials: int | None = None
    top_k: int | None = None
    finetune_epochs: int | None = None
    calibration: int | None = None
    seed: int | None = None
    data_dir: str | None = None
    device: str | None = None
    finetune_steps: int | None = None


class _Entry(_Settings):
    name: str | None = None


KEYS = list(_Entry.model_fields)


@dataclass(frozen=True)
class Entry:
    """One search of the matrix: its run folder's name and its run config."""
    name: str
    config: RunConfig


@dataclass(frozen=True)
class Nightly:
    source: str
    results: Path
    entries: tuple[Entry, ...]


def load_nightly(path: str | Path, *, cache_dir: str | None = None, results: str | None = None) -> Nightly:
    """Parse and check a nightly file: every entry expanded, named and checked as a run, or one NightlyError.
    `results` replaces the file's results folder (one folder per night: `--results results/nightly/2026-12-06`)."""
    from cost_models.target import parse_yaml

    path, override = Path(path), results
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NightlyError(f"cannot read nightly file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise NightlyError(f"nightly file {path} is not UTF-8 text; save it as UTF-8 YAML") from None
    try:
        data = parse_yaml(text, source=f"nightly file {path}", keys="(results, defaults, entries)",
                          whose="the nightly file's", example="nightly.yaml")
    except HwsearchError as exc:
        raise NightlyError(str(exc)) from None
    problems = []
    unknown = [k for k in data if k not in ("results", "defaults", "entries")]
    if unknown:
        problems.append(f"unknown top-level key {unknown[0]!r}: the keys are results, defaults and entries")
    results = data.get("results", "results/nightly")
    if not isinstance(results, str) or not results:
        problems.append(f"results must be a folder path, got {results!r}")
    defaults = _settings(data.get("defaults") or {}, "defaults", _Settings, problems)
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        problems.append("entries must be a list of at least one search (model, target and a budget each)")
        raw_entries = []
    entries: list[Entry] = []
    for number, raw in enumerate(raw_entries, start=1):
        where = f"entry {number}"
        if not isinstance(raw, dict):
            problems.append(f"{where} must be a mapping of keys ({', '.join(KEYS[:4])}, ...), got {raw!r}")
            continue
        where += f" ({raw['name']})" if isinstance(raw.get("name"), str) else ""
        entry = _settings(raw, where, _Entry, problems)
        if entry is not None and defaults is not None:
            entries += _expand(entry, defaults, where, cache_dir, problems)
    names = [e.name for e in entries]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"two entries are named {name!r}: give each a distinct name")
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise NightlyError(f"nightly file {path}: {shown}")
    return Nightly(str(path), Path(override or results), tuple(entries))


def _settings(raw: dict, where: str, model: type[BaseModel], problems: list[str]):
    if not isinstance(raw, dict):
        problems.append(f"{where} must be a mapping of keys ({', '.join(KEYS[:4])}, ...)")
        return None
    # a budget written as a bare number of bytes (10000000) is read as an int by YAML
    raw = {k: (str(v) if k in ("budget", "latency", "energy") and isinstance(v, (int, float))
               and not isinstance(v, bool) else v) for k, v in raw.items()}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            if error["type"] == "extra_forbidden":
                close = difflib.get_close_matches(key, KEYS, n=1)
                problems.append(f"{where}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                                + f"; the keys are {', '.join(KEYS)}")
            else:
                problems.append(f"{where}: {key}: {error['msg']}, got {error.get('input')!r}")
        return None


def _expand(entry: _Entry, defaults: _Settings, where: str, cache_dir: str | None, problems: list[str]) -> list[Entry]:
    """The runs of one entry: defaults filled in, lists in MATRIX_KEYS multiplied out, each named and checked."""
    from hwsearch.runs import model_label

    merged = {k: v for k, v in defaults.model_dump().items() if v is not None}
    merged.update({k: v for k, v in entry.model_dump().items() if v is not None})
    axes = {k: merged[k] if isinstance(merged.get(k), list) else [merged.get(k)] for k in MATRIX_KEYS}
    for key, values in axes.items():
        if not values:
            problems.append(f"{where}: {key} is an empty list: give at least one value")
            return []
    combos = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    if entry.name is not None and len(combos) > 1:
        problems.append(f"{where}: name {entry.name!r} would name {len(combos)} runs (lists in "
                        f"{', '.join(k for k in MATRIX_KEYS if len(axes[k]) > 1)}): leave name out to name each")
        return []
    out = []
    for combo in combos:
        settings = {**merged, **combo}
        settings.pop("name", None)
        fields = {FIELDS.get(k, k): v for k, v in settings.items() if v is not None}
        config = replace(RunConfig(budget=None), **fields, cache_dir=cache_dir)
        try:
            check(config, yaml=True)
            _check_resolvable(config)
        except HwsearchError as exc:
            problems.append(f"{where}: {exc}")
            continue
        budgets = Budgets.parse(size=config.budget, latency=config.latency, energy=config.energy)
        name = entry.name or re.sub(r"[^A-Za-z0-9._-]", "", f"{model_label(config.model)}-{Path(config.target).stem}-"
                                                           f"{budgets.label()}")
        if not _SAFE_NAME.fullmatch(name):
            problems.append(f"{where}: name {name!r} is not a plain folder name: use letters, digits, '.', '_' and "
                            "'-' only, not starting with '.'")
            continue
        out.append(Entry(name, replace(config, run_id=name)))
    return out


def _check_resolvable(config: RunConfig) -> None:
    """What can be checked without running: the target exists and parses, the model is known, the search's
    objectives and sampler are ones it runs."""
    from cost_models import load_target
    from hwsearch.study import SearchConfig
    from hwsearch.workloads import RECIPES

    load_target(config.target)
    if ":" not in config.model and config.model not in RECIPES:
        close = difflib.get_close_matches(config.model, list(RECIPES), n=1)
        raise NightlyError(f"model {config.model!r} is not a built-in model" + (f" (did you mean {close[0]!r}?)"
                           if close else "") + f": choose one of {', '.join(sorted(RECIPES))} or give "
                           "package.module:function with data")
    SearchConfig(Budgets.parse(size=config.budget, latency=config.latency, energy=config.energy),
                 objectives=tuple(config.objectives.split(",")), sampler=config.sampler)

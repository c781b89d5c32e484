"""`hwsearch nightly nightly.yaml`: a matrix of searches, each into its own run folder, and one nightly.json.

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
structured, classifier, trials, top_k, finetune_epochs, calibration, seed. The whole file is checked before anything runs (every
problem in one NightlyError naming the entry).

Made to be run unattended, again and again: an entry whose run folder is complete is
skipped and its figures read back from it (one run with other settings in it is an error
for that entry); an entry that fails is recorded with its error and the others still run;
nightly.json is rewritten atomically after every entry, so it is whole even after a crash.
Entries on the same model share its trained weights and proxy table in memory.
"""
from __future__ import annotations

import difflib
import itertools
import json
import re
import time
import traceback
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from typing import Literal

from pydantic import BaseModel, ValidationError

from hwsearch.budget import Budgets, format_joules, format_seconds
from hwsearch.config import RunConfig, check
from hwsearch.errors import HwsearchError

NIGHTLY_VERSION = 1
MATRIX_KEYS = ("model", "target", "budget", "latency", "energy")    # keys that may hold a list
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
# entry keys -> RunConfig fields where they differ
FIELDS = {"calibration": "calibration_size"}
# settings that do not change a run's result, left out when an earlier run folder is compared with an entry
NOT_SETTINGS = ("results_dir", "run_id", "cache_dir")


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
    from hwsearch.pipeline import model_label

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
    from cost_models.target import load_target
    from hwsearch.study import SearchConfig
    from hwsearch.workload import RECIPES

    load_target(config.target)
    if ":" not in config.model and config.model not in RECIPES:
        close = difflib.get_close_matches(config.model, list(RECIPES), n=1)
        raise NightlyError(f"model {config.model!r} is not a built-in model" + (f" (did you mean {close[0]!r}?)"
                           if close else "") + f": choose one of {', '.join(sorted(RECIPES))} or give "
                           "package.module:function with data")
    SearchConfig(Budgets.parse(size=config.budget, latency=config.latency, energy=config.energy),
                 objectives=tuple(config.objectives.split(",")), sampler=config.sampler)


def run_nightly(nightly: Nightly, progress=None) -> dict:
    """Run every entry not yet finished, one after another; returns what nightly.json holds."""
    from hwsearch.pipeline import prepare, prepare_key

    def say(message: str) -> None:
        if progress:
            progress.console.print(message, soft_wrap=True, markup=False, highlight=False)

    nightly.results.mkdir(parents=True, exist_ok=True)
    report = {"version": NIGHTLY_VERSION, "nightly": nightly.source, "results": str(nightly.results),
              "started": _now(), "finished": None, "entries": [], "counts": {}}
    prepared: dict[tuple, object] = {}
    task = progress.add_task("nightly: entries", total=len(nightly.entries)) if progress else None
    for entry in nightly.entries:
        start = time.perf_counter()
        record = _finished(entry, nightly.results)
        if record is None:
            try:
                key = prepare_key(entry.config)
                if key not in prepared:
                    prepared[key] = prepare(entry.config, progress)
                record = _ran(entry, nightly.results, prepared[key], progress)
            except HwsearchError as exc:
                record = _record(entry, nightly.results, status="failed", error=str(exc))
            except Exception as exc:     # a bug or a broken environment: recorded, and the other entries still run
                record = _record(entry, nightly.results, status="failed", error=f"{type(exc).__name__}: {exc}",
                                 traceback=traceback.format_exc())
        record["wall_s"] = round(time.perf_counter() - start, 2)
        report["entries"].append(record)
        report["counts"] = _counts(report["entries"])
        write_json_atomic(nightly.results / "nightly.json", report)
        say(_line(record))
        if progress:
            progress.advance(task)
    if progress:
        progress.remove_task(task)
    report["finished"] = _now()
    write_json_atomic(nightly.results / "nightly.json", report)
    return report


def _ran(entry: Entry, results: Path, prepared, progress) -> dict:
    from hwsearch.pipeline import run

    summary, _ = run(replace(entry.config, results_dir=str(results)), progress, prepared=prepared)
    return _record(entry, results, summary=summary, skipped=False)


def _finished(entry: Entry, results: Path) -> dict | None:
    """The record of an entry whose run folder is complete (None if it has none); a folder left by a run
    with other settings, or one that is not a finished run folder, is a failure of this entry."""
    folder = results / entry.name
    if not folder.exists():
        return None
    try:
        summary = json.loads((folder / "summary.json").read_text())
        settings = summary["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return _record(entry, results, status="failed",
                       error=f"{folder} exists but is not a finished run folder (no readable summary.json): "
                             "remove it to run this entry again")
    wanted = _comparable(asdict(entry.config))
    differ = [k for k in wanted if _comparable(settings).get(k) != wanted[k]]
    if differ:
        changes = ", ".join(f"{k} {settings.get(k)!r} -> {wanted[k]!r}" for k in differ)
        return _record(entry, results, status="failed",
                       error=f"{folder} holds a run with other settings ({changes}): remove the folder or rename "
                             "the entry")
    return _record(entry, results, summary=summary, skipped=True)


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in NOT_SETTINGS}


def _record(entry: Entry, results: Path, *, summary: dict | None = None, skipped: bool = False,
            status: str | None = None, error: str | None = None, traceback: str | None = None) -> dict:
    c = entry.config
    record = {"name": entry.name, "model": c.model, "target": c.target,
              "budgets": {k: v for k, v in (("budget", c.budget), ("latency", c.latency), ("energy", c.energy)) if v},
              "status": status, "skipped": skipped, "folder": str(results / entry.name), "error": error,
              "figures": None}
    if traceback:
        record["traceback"] = traceback
    if summary is not None:
        final, floor = summary["final"], summary["accuracy_floor"]
        record["status"] = "ok" if floor["met"] else "below floor"
        if not floor["met"]:
            record["error"] = (f"test accuracy {final['test_accuracy']:.2%} is {floor['drop'] * 100:.1f} points below "
                               f"the baseline, more than the {floor['max_drop'] * 100:g} allowed")
        record["figures"] = {"baseline_test_accuracy": summary["baseline"]["test_accuracy"],
                             "test_accuracy": final["test_accuracy"], "size_bytes": final["size_bytes"],
                             "latency_s": final["latency_s"], "energy_j": final["energy_j"],
                             "compression_ratio": summary["compression_ratio"], "proxy": final["proxy"],
                             "binding": summary["binding"]}
    return record


def _counts(records: list[dict]) -> dict:
    counts = {"entries": len(records), "ok": 0, "below floor": 0, "failed": 0}
    for r in records:
        counts[r["status"]] += 1
    counts["skipped"] = sum(r["skipped"] for r in records)
    return counts


def _line(r: dict) -> str:
    if r["status"] == "failed":
        return f"{r['name']}: FAILED: {r['error']}"
    f = r["figures"]
    return (f"{r['name']}: {'skipped (finished earlier), ' if r['skipped'] else ''}{r['status']}: test "
            f"{f['test_accuracy']:.2%}, {f['size_bytes']:,} B, {format_seconds(f['latency_s'])}, "
            f"{format_joules(f['energy_j'])}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to a temporary file beside `path`, then rename it over `path`: readers never see half."""
    from hwsearch.atomic_write import write_text

    write_text(path, json.dumps(data, indent=1) + "\n")


def exit_code(report: dict) -> int:
    """0 when every entry finished within its accuracy floor; 1 when any failed or fell below it."""
    return 0 if report["counts"]["failed"] == 0 and report["counts"]["below floor"] == 0 else 1

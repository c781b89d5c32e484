"""`hwsearch compare OLD NEW`: what got worse between two runs, or between two nightlies.

OLD and NEW are both run folders (their summary.json) or both nightly.json files (or the
folders that hold them); nightly entries are matched by name. A regression is:

    test accuracy     down by more than --accuracy-tol points (default 0.5)
    size, latency,    up by more than --size-tol, --latency-tol, --energy-tol percent (default 1 each)
    energy
    an entry          ok in OLD and failed, below its accuracy floor, or missing in NEW

An entry that failed in OLD has no figures to compare with: it is listed, not a regression.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hwsearch.budget import format_joules, format_seconds
from hwsearch.errors import HwsearchError

# figure -> (label, higher is better); the order of the table's columns
METRICS = {"test_accuracy": ("accuracy", True), "size_bytes": ("size", False), "latency_s": ("latency", False),
           "energy_j": ("energy", False)}


class CompareError(HwsearchError):
    """Inputs that are not two run folders or two nightly.json files."""


@dataclass(frozen=True)
class Tolerances:
    accuracy_points: float = 0.5    # test accuracy may fall this many points (0.5: 99.0% -> 98.5%)
    size_pct: float = 1.0           # size, latency and energy may grow this many percent
    latency_pct: float = 1.0
    energy_pct: float = 1.0

    def __post_init__(self):
        for name, value in vars(self).items():
            if not value >= 0:
                raise CompareError(f"--{name.split('_')[0]}-tol must be 0 or more, got {value:g}")


def load(path: str | Path) -> tuple[str, dict[str, dict]]:
    """("run" or "nightly", {entry name: {"status", "figures", "settings"}}) of a run folder or nightly.json."""
    path = Path(path)
    if path.is_dir() and (path / "summary.json").is_file():
        summary = _read(path / "summary.json")
        try:
            return "run", {"run": _from_summary(summary)}
        except (KeyError, TypeError):
            raise CompareError(f"{path / 'summary.json'} is not an hwsearch run summary") from None
    if path.is_dir() and (path / "nightly.json").is_file():
        path = path / "nightly.json"
    if path.is_file() and path.suffix == ".json":
        report = _read(path)
        try:
            return "nightly", {e["name"]: {"status": e["status"], "figures": e["figures"],
                                           "settings": _settings(e["model"], e["target"], e["budgets"]),
                                           "error": e.get("error")} for e in report["entries"]}
        except (KeyError, TypeError):
            raise CompareError(f"{path} is not an hwsearch nightly.json (entries with name, status and figures)") \
                from None
    raise CompareError(f"{path} is neither a run folder (with summary.json) nor a nightly.json file: pass two run "
                       "folders or two nightly.json files")


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CompareError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(data, dict):
        raise CompareError(f"{path} does not hold a JSON object")
    return data


def _from_summary(s: dict) -> dict:
    f = s["final"]
    return {"status": "ok" if s["accuracy_floor"]["met"] else "below floor", "error": None,
            "figures": {k: f[k] for k in METRICS},
            "settings": _settings(s["model"], s["target"], {k: v for k, v in s["budgets"].items()})}


def _settings(model: str, target: str, budgets: dict) -> str:
    return f"{model} on {target}, " + ", ".join(f"{k} {v}" for k, v in sorted(budgets.items()))


def compare(old: str | Path, new: str | Path, tolerances: Tolerances = Tolerances()) -> dict:
    """Every entry of OLD and NEW side by side, with the regressions of NEW against OLD."""
    old_kind, old_entries = load(old)
    new_kind, new_entries = load(new)
    if old_kind != new_kind:
        raise CompareError(f"{old} is a {old_kind} and {new} a {new_kind}: compare two run folders or two "
                           "nightly.json files")
    limits = {"test_accuracy": tolerances.accuracy_points, "size_bytes": tolerances.size_pct,
              "latency_s": tolerances.latency_pct, "energy_j": tolerances.energy_pct}
    rows = []
    for name in list(old_entries) + [n for n in new_entries if n not in old_entries]:
        before, after = old_entries.get(name), new_entries.get(name)
        row = {"name": name, "old_status": before["status"] if before else "absent",
               "new_status": after["status"] if after else "absent", "metrics": {}, "regressions": [], "notes": []}
        if before and after and before["settings"] != after["settings"]:
            row["notes"].append(f"settings differ: {before['settings']} -> {after['settings']}")
        if before is None:
            row["notes"].append("new entry")
        elif before["status"] == "ok" and (after is None or after["status"] != "ok"):
            row["regressions"].append("missing in NEW" if after is None else
                                      f"{after['status']} in NEW" + (f" ({after['error']})" if after["error"] else ""))
        if before and after and before["figures"] and after["figures"]:
            for key, (label, higher_better) in METRICS.items():
                a, b = before["figures"][key], after["figures"][key]
                change = (b - a) * 100 if key == "test_accuracy" else ((b / a - 1) * 100 if a else 0.0)
                worse = -change if higher_better else change
                regressed = worse > limits[key] + 1e-9
                row["metrics"][key] = {"old": a, "new": b, "change": change, "regression": regressed}
                if regressed:
                    unit = " points" if key == "test_accuracy" else "%"
                    row["regressions"].append(f"{label} {change:+.2f}{unit} (tolerance {limits[key]:g}{unit})")
        rows.append(row)
    return {"old": str(old), "new": str(new), "kind": old_kind, "tolerances": vars(tolerances),
            "entries": rows, "regressions": sum(bool(r["regressions"]) for r in rows)}


def format_table(result: dict) -> str:
    """A short table: one line per entry with its figures old -> new, and a verdict."""
    def cell(key, m):
        if key == "test_accuracy":
            return f"{m['old']:.2%} -> {m['new']:.2%}"
        if key == "size_bytes":
            return f"{int(m['old']):,} -> {int(m['new']):,} B"
        text = format_seconds if key == "latency_s" else format_joules
        return f"{text(m['old'])} -> {text(m['new'])}"

    header = ["entry", *(label for label, _ in METRICS.values()), "verdict"]
    lines = []
    for r in result["entries"]:
        figures = [cell(k, r["metrics"][k]) if k in r["metrics"] else f"{r['old_status']} -> {r['new_status']}"
                   for k in METRICS]
        verdict = ("REGRESSION: " + "; ".join(r["regressions"])) if r["regressions"] else "ok"
        if r["notes"]:
            verdict += " (" + "; ".join(r["notes"]) + ")"
        lines.append([r["name"], *figures, verdict])
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header) - 1)]
    out = ["  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in [header, *lines]]
    n = result["regressions"]
    out.append(f"{n} regression{'s' if n != 1 else ''} in {len(result['entries'])} entr"
               f"{'ies' if len(result['entries']) != 1 else 'y'} ({result['old']} -> {result['new']})")
    return "\n".join(out)

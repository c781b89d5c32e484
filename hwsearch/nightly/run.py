"""`hwsearch nightly nightly.yaml`: every entry of a nightly file into its own run folder, and one nightly.json.

Made to be run unattended, again and again: an entry whose run folder is complete is
skipped and its figures read back from it (one run with other settings in it is an error
for that entry); an entry that fails is recorded with its error and the others still run;
nightly.json is rewritten atomically after every entry, so it is whole even after a crash.
Entries on the same model share its trained weights and proxy table in memory.
"""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

from hwsearch.budget import format_joules, format_seconds
from hwsearch.errors import HwsearchError
from hwsearch.nightly.file import NOT_SETTINGS, Entry, Nightly

NIGHTLY_VERSION = 1


def run_nightly(nightly: Nightly, progress=None) -> dict:
    """Run every entry not yet finished, one after another; returns what nightly.json holds."""
    from hwsearch.runs import prepare, prepare_key

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
    from hwsearch.runs import pipeline

    summary, _ = pipeline.run(replace(entry.config, results_dir=str(results)), progress, prepared=prepared)
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

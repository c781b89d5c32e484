"""`hwsearch --target cortex-a76 --budget 10MB`: search, retrain, export, report; `--resume RUN` continues a run."""
from __future__ import annotations

import sys

from hwsearch.commands.output import si, with_progress
from hwsearch.commands.parser import SIZES, Parser, run_arguments, run_config
from hwsearch.config import RunConfig
from hwsearch.errors import UsageError

RESUME_OPTIONS = ("--resume", "--results", "--cache-dir", "--quiet")
EXIT_FLOOR = 3          # the run finished and wrote its folder, but no candidate kept enough accuracy


def _parser() -> Parser:
    p = Parser(
        prog="hwsearch",
        description="Find the per-layer compression (rank, sparsity, bits) that keeps the most accuracy "
                    "within file-size, latency and energy budgets on a hardware target, confirm it by retraining "
                    "and export it.",
        epilog=SIZES + " The exported file is at most the budget. Other commands: hwsearch worker | inspect | "
               "targets | cost | validate | calibrate | codesign | nightly | compare (each with --help).")
    run_arguments(p)
    d = RunConfig()
    p.add_argument("--storage", default=None,
                   help="where the study lives: a journal file path, sqlite:///path.db or postgresql://user@host/db "
                        "(default: study.journal in the run folder); `hwsearch worker` processes can join a database one")
    p.add_argument("--heartbeat", type=int, default=d.heartbeat_s,
                   help=f"database storages: seconds between a running trial's heartbeats; a trial silent for three "
                        f"is marked failed and retried (default {d.heartbeat_s})")
    p.add_argument("--resume", default=None, metavar="RUN",
                   help="continue an interrupted run (its id, or its results/.<id>.partial folder) with the settings "
                        "it started with; only --results, --cache-dir and --quiet go with it")
    p.add_argument("--debug", action="store_true", help="show the traceback of any error (anywhere on the line)")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.resume is not None:
        extra = sorted({a.split("=")[0] for a in argv if a.startswith("--")} - set(RESUME_OPTIONS))
        if extra:
            raise UsageError(f"--resume continues a run with the settings it started with: {', '.join(extra)} cannot "
                             f"go with it (only {', '.join(RESUME_OPTIONS[1:])})")
        return _searched(args, lambda api, bars: api.resume(args.resume, results=args.results,
                                                            cache_dir=args.cache_dir, progress=bars))
    if args.heartbeat < 1:
        raise UsageError(f"--heartbeat must be at least 1, got {args.heartbeat}")
    if args.storage is not None:
        from hwsearch.storage import kind
        kind(args.storage)
    config = run_config(args)           # fail fast, before heavy imports
    return _searched(args, lambda api, bars: api.run(config, progress=bars))


def _searched(args, start) -> int:
    """Run (or resume) the search through the Python API, with progress bars; print the summary; exit 3
    below the accuracy floor."""
    from hwsearch import api

    result = with_progress(lambda bars: start(api, bars), quiet=args.quiet)
    summary, folder = result.summary, result.folder
    print_summary(summary, folder)
    floor = summary["accuracy_floor"]
    if not floor["met"]:
        hint = (f"a budget of about {floor['suggested_size_bytes']:,} bytes would likely meet it (from the retrained "
                "candidates' accuracy against their proxy, and the exact frontier)"
                if floor.get("suggested_size_bytes") else "no plan seen scores well enough: relax the budgets")
        print(f"hwsearch: accuracy floor not met: the best retrained candidate reaches "
              f"{summary['final']['test_accuracy']:.2%} test accuracy, {floor['drop'] * 100:.1f} points below the "
              f"baseline {summary['baseline']['test_accuracy']:.2%} (--max-accuracy-drop "
              f"{floor['max_drop'] * 100:g}); {hint}", file=sys.stderr)
        return EXIT_FLOOR
    return 0


def print_summary(s: dict, folder) -> None:
    b, f = s["baseline"], s["final"]
    budgets = ", ".join(f"{k.split('_')[0]} {si(v, {'size_bytes': 'B', 'latency_s': 's', 'energy_j': 'J'}[k])}"
                        for k, v in s["budgets"].items())
    print(f"hwsearch: {s['model']} on {s['target']}, budget{'s' if len(s['budgets']) > 1 else ''} "
          + (f"{s['budget']} ({s['budget_bytes']:,} bytes)" if list(s["budgets"]) == ["size_bytes"] else budgets))
    kept = "fine-tuned" if f["fine_tuned_kept"] else "compressed, fine-tuning did not help"
    metric = "" if s.get("metric", "top-1 accuracy") == "top-1 accuracy" else f"{s['metric']}, "
    print(f"  accuracy  {b['test_accuracy']:.2%} -> {f['test_accuracy']:.2%} ({metric}test; {kept})")
    print(f"  size      {b['size_bytes']:,} -> {f['size_bytes']:,} bytes ({s['compression_ratio']:.2f}x)")
    print(f"  latency   {si(b['latency_s'], 's')} -> {si(f['latency_s'], 's')} (predicted)")
    print(f"  energy    {si(b['energy_j'], 'J')} -> {si(f['energy_j'], 'J')} (predicted)")
    print(f"  results   {folder}/ (summary.json, report.md, pareto.png, {s['artifact']})")

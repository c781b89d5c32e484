"""`hwsearch nightly nightly.yaml`: a matrix of searches, idempotent, one nightly.json."""
from __future__ import annotations

from hwsearch.commands.main import Interrupted
from hwsearch.commands.output import with_progress
from hwsearch.commands.parser import Parser


def main(argv: list[str]) -> int:
    p = Parser(
        prog="hwsearch nightly",
        description="Run a matrix of searches from a YAML file, each into its own run folder, and write one "
                    "nightly.json with every entry's figures. Entries already finished are skipped; a failing entry "
                    "does not stop the others. Exit 0 when every entry finished within its accuracy floor, 1 when "
                    "any failed or fell below it, 2 for a bad file.")
    p.add_argument("file", help="the nightly file (see nightly.yaml in the repository)")
    p.add_argument("--results", default=None,
                   help="folder for this night's run folders and nightly.json, instead of the file's results "
                        "(e.g. results/nightly/$(date +%%F)); running again into it skips what finished")
    p.add_argument("--cache-dir", default=None, help="trained-model cache (default $HWSEARCH_CACHE or ~/.cache/hwsearch)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines; print the summary only")
    args = p.parse_args(argv)
    from hwsearch.nightly import exit_code, load_nightly, run_nightly

    nightly = load_nightly(args.file, cache_dir=args.cache_dir, results=args.results)   # checked before anything runs
    try:
        report = with_progress(lambda progress: run_nightly(nightly, progress), quiet=args.quiet)
    except KeyboardInterrupt as exc:
        raise Interrupted(f"the entries finished so far are in {nightly.results}/nightly.json") from exc
    c = report["counts"]
    print(f"hwsearch nightly: {c['entries']} entries: {c['ok']} ok, {c['below floor']} below the accuracy floor, "
          f"{c['failed']} failed ({c['skipped']} finished earlier and skipped)")
    for r in report["entries"]:
        if r["status"] != "ok":
            print(f"  {r['name']}: {r['status']}: {r['error']}")
    print(f"  results {report['results']}/nightly.json")
    return exit_code(report)

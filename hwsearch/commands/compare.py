"""`hwsearch compare OLD NEW`: regressions between two runs or two nightlies (exit 1)."""
from __future__ import annotations

import json

from hwsearch.commands.parser import Parser


def main(argv: list[str]) -> int:
    from hwsearch.nightly import Tolerances

    d = Tolerances()
    p = Parser(
        prog="hwsearch compare",
        description="Compare two run folders, or two nightly.json files, and list the regressions: test accuracy "
                    "down, or size, latency or energy up, beyond the tolerances; an entry that failed or went "
                    "missing. Exit 1 on a regression, 0 otherwise, 2 for bad input.")
    p.add_argument("old", help="the reference: a run folder or a nightly.json (or the folder holding it)")
    p.add_argument("new", help="the run to check, of the same kind")
    p.add_argument("--accuracy-tol", type=float, default=d.accuracy_points,
                   help=f"points of test accuracy NEW may lose (default {d.accuracy_points:g})")
    p.add_argument("--size-tol", type=float, default=d.size_pct, help=f"percent the file may grow (default {d.size_pct:g})")
    p.add_argument("--latency-tol", type=float, default=d.latency_pct,
                   help=f"percent the predicted latency may grow (default {d.latency_pct:g})")
    p.add_argument("--energy-tol", type=float, default=d.energy_pct,
                   help=f"percent the predicted energy may grow (default {d.energy_pct:g})")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = p.parse_args(argv)
    from hwsearch.nightly import compare, format_table

    result = compare(args.old, args.new, Tolerances(args.accuracy_tol, args.size_tol, args.latency_tol,
                                                    args.energy_tol))
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 1 if result["regressions"] else 0

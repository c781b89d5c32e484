"""`hwsearch validate --target T`: how far to trust a target's cost model."""
from __future__ import annotations

import json

from hwsearch.commands.parser import Parser
from hwsearch.errors import HwsearchError


def main(argv: list[str]) -> int:
    p = Parser(
        prog="hwsearch validate",
        description="How far to trust a target's cost model. host targets: compressed variants of several models "
                    "timed on this machine with the target's runtime; phone, embedded and datacenter targets: the "
                    "published latencies their kernel figures were fitted on and held-out ones; accelerators: "
                    "ZigZag on the same layers.")
    p.add_argument("--target", required=True, help="built-in target name or path to a target YAML")
    p.add_argument("--variants", type=int, default=8, help="host: compressed variants per model (default 8)")
    p.add_argument("--layers", type=int, default=12, help="accelerators: layer shapes simulated (default 12)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = p.parse_args(argv)
    if args.variants < 1 or args.layers < 1:
        raise HwsearchError("--variants and --layers must be at least 1")
    from rich.console import Console
    from rich.progress import Progress

    from cost_models import load_target
    from cost_models.validate import validate_target

    target = load_target(args.target)
    with Progress(console=Console(stderr=True), transient=True) as progress:
        report = validate_target(target, variants=args.variants, layers=args.layers, progress=progress)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(report["text"])
    return 0

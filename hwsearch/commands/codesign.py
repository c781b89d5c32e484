"""`hwsearch codesign --target T --sweep KEY=VALUES --budget B`: the search at every point of a hardware grid."""
from __future__ import annotations

from hwsearch.commands.output import si, with_progress
from hwsearch.commands.parser import SIZES, Parser, run_arguments, run_config


def main(argv: list[str]) -> int:
    from hwsearch.codesign import RETRAIN

    p = Parser(
        prog="hwsearch codesign",
        description="Sweep a target's parameters and run the search at every point of the grid: which hardware, "
                    "with which compression, keeps the most accuracy within the budgets, and what it costs in "
                    "latency, energy and area. The model and the proxy table are prepared once for all points.",
        epilog="--sweep KEY=VALUES, once per parameter (the grid is their product). KEY: a dotted path to a "
               "numeric field of the target YAML, list items by index or name (memory.glb.size_bytes, "
               "compute.0.macs_per_cycle, dram.bandwidth_bytes_per_s), or glb_kb (the global buffer in KiB) or pe "
               "(the PE array, e.g. 12x14). VALUES: 64,128,256 or ranges 64:512:x2 (geometric), 0:64:+16 "
               "(arithmetic). " + SIZES)
    # a retrained point exports its best plan: the one its row in the table describes
    run_arguments(p, top_k=1)
    p.add_argument("--sweep", action="append", default=[], metavar="KEY=VALUES",
                   help="a parameter and its values, e.g. glb_kb=64,128,256 or pe=12x14,16x16 (repeat for a grid)")
    p.add_argument("--retrain", default="front", choices=RETRAIN,
                   help="run whole, with retraining and export: the points on the front across hardware (default), "
                        "every point, or none")
    p.add_argument("--front-tol", type=float, default=5.0, metavar="PERCENT",
                   help="differences smaller than this count as ties on the front (default 5; 0: exact)")
    args = p.parse_args(argv)
    from hwsearch.codesign import CodesignConfig, plan_grid, run_codesign

    config = CodesignConfig(run_config(args), tuple(args.sweep), args.retrain, args.front_tol)
    points = plan_grid(config)          # every point validated as a target before anything heavy runs
    summary, folder = with_progress(lambda progress: run_codesign(config, progress, points=points), quiet=args.quiet)
    print_codesign(summary, folder)
    return 0


def print_codesign(s: dict, folder) -> None:
    keys = [sweep["key"] for sweep in s["sweeps"]]
    budgets = ", ".join(f"{k.split('_')[0]} {si(v, {'size_bytes': 'B', 'latency_s': 's', 'energy_j': 'J'}[k])}"
                        for k, v in s["budgets"].items())
    print(f"hwsearch codesign: {s['model']} on {len(s['points'])} variants of {s['target']}, budgets {budgets}")
    header = ["point", *keys, "area mm2", "best proxy", "size", "latency", "energy", "front", "retrained test acc."]
    rows = []
    for r in s["points"]:
        area = "" if r["hardware"]["area_mm2"] is None else f"{r['hardware']['area_mm2']:.3f}"
        if r["status"] != "ok":
            rows.append([r["id"], *(r["params"][k] for k in keys), area, "infeasible", "", "", "", "", ""])
            continue
        b = r["best"]
        rows.append([r["id"], *(r["params"][k] for k in keys), area, f"{b['proxy']:.4g}", f"{b['size_bytes']:,} B",
                     si(b["latency_s"], "s"), si(b["energy_j"], "J"), "*" if r["on_front"] else "",
                     f"{r['retrained']['test_accuracy']:.2%}" if r["retrained"] else ""])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"  front: {', '.join(s['front'])} (no other point as good on best proxy, latency, energy and area, "
          f"within {s['front_tol_pct']:g}%, and better on one)")
    print(f"  results {folder}/ (report.md, points.csv, accuracy.png, front.png, points/<point>/run/ where retrained)")

"""`hwsearch --target cortex-a76 --budget 10MB`: search, retrain, export, report.

Other commands, on the cost side:

    hwsearch targets                                         the built-in targets, one line each
    hwsearch cost --model resnet50 --input 3x224x224 --target cortex-a76 [--json]
    hwsearch validate --target host                          predicted against measured or published
    hwsearch calibrate host                                  measure this machine into targets/host.yaml

and for sweeps and pipelines:

    hwsearch codesign --target eyeriss-like --sweep glb_kb=64,128,256 --sweep pe=12x14,16x16 --budget 2MB
    hwsearch nightly nightly.yaml                            a matrix of searches, idempotent
    hwsearch compare OLD NEW                                 regressions between two runs or nightlies (exit 1)

Bad input ends with one line on stderr (what is wrong and how to fix it) and exit 2.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys

from hwsearch.config import RunConfig, check
from hwsearch.errors import HwsearchError

EXIT_USAGE = 2
EXIT_FLOOR = 3          # the run finished and wrote its folder, but no candidate kept enough accuracy


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hwsearch", allow_abbrev=False,
        description="Find the per-layer compression (rank, sparsity, bits) that keeps the most accuracy "
                    "within a size budget on a hardware target, confirm it by retraining and export it.",
        epilog=SIZES + " The exported file is at most the budget. "
               "Other commands: hwsearch targets | cost | validate | calibrate | codesign | nightly | compare "
               "(each with --help).")
    _run_arguments(p)
    return p


SIZES = ("Sizes: B, KB, MB, GB are powers of 10 (10MB = 10,000,000 bytes); KiB, MiB, GiB are powers "
         "of 2 (10MiB = 10,485,760 bytes); a bare number is bytes.")


def _run_arguments(p: argparse.ArgumentParser, **defaults) -> None:
    """The flags of one search, shared by `hwsearch` and `hwsearch codesign` (which sets some `defaults`)."""
    d = RunConfig(**defaults)
    p.add_argument("--target", default=d.target, help=f"built-in target name or path to a target YAML (default {d.target})")
    p.add_argument("--budget", default=None,
                   help="size budget of the exported file, e.g. 10MB, 10MiB, 500KB, 10000000")
    p.add_argument("--latency", default=None, help="latency budget per inference on the target, e.g. 5ms, 250us")
    p.add_argument("--energy", default=None, help="energy budget per inference on the target, e.g. 2mJ, 500uJ")
    p.add_argument("--objectives", default=d.objectives,
                   help="proxy (default: the best plan within the budgets), or proxy with any of size, latency, "
                        "energy, e.g. proxy,latency: a front of plans trading one against the other")
    p.add_argument("--sampler", default=None,
                   help="Optuna sampler: tpe, nsga2, nsga3, random, qmc, gp (default tpe, nsga2 for several objectives)")
    p.add_argument("--max-accuracy-drop", type=float, default=d.max_accuracy_drop,
                   help=f"test accuracy points the exported model may lose against the baseline; below it the run "
                        f"still writes its folder but exits 3 (default {d.max_accuracy_drop:g})")
    p.add_argument("--model", default=d.model,
                   help=f"built-in model trained on digits (resnet18_digits, lenet5_digits; default {d.model}), or your "
                        "trained model: package.module:function or path/to/file.py:function returning an nn.Module")
    p.add_argument("--data", default=None,
                   help="your data, with your model: package.module:function or file.py:function returning "
                        "(train, val, test), each an (inputs, labels) pair of tensors or a DataLoader")
    p.add_argument("--input", default=None, help="shape of one example, e.g. 3x32x32; checked against --data")
    p.add_argument("--eval", default=None,
                   help="your metric, function(model, split) -> float, higher is better (default top-1 accuracy)")
    p.add_argument("--loss", default=None,
                   help="your fine-tuning loss, function(outputs, labels) -> tensor (default cross-entropy)")
    p.add_argument("--trials", type=int, default=d.trials, help=f"Optuna trials (default {d.trials})")
    p.add_argument("--top-k", type=int, default=d.top_k, help=f"candidates confirmed by retraining (default {d.top_k})")
    p.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs, help=f"epochs per retrained candidate (default {d.finetune_epochs})")
    p.add_argument("--calibration", type=int, default=d.calibration_size, help=f"images feeding the proxy (default {d.calibration_size})")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--results", default=d.results_dir, help=f"folder for run folders (default {d.results_dir}/)")
    p.add_argument("--cache-dir", default=None, help="trained-model cache (default $HWSEARCH_CACHE or ~/.cache/hwsearch)")
    p.add_argument("--run-id", default=None, help="name of the run folder (default <target>-<budget>-<model>-<UTC time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars; print the summary only")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return _run_command(COMMANDS[argv[0]], argv[1:])
    return _search(argv)


def _search(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        config = _run_config(args)      # fail fast, before heavy imports
    except HwsearchError as exc:
        print(f"hwsearch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from hwsearch.pipeline import run

    outcome, code = _long_running(lambda progress: run(config, progress), quiet=args.quiet)
    if code is not None:
        return code
    summary, folder = outcome
    _print_summary(summary, folder)
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


def _long_running(work, *, quiet: bool, folders: str = "--results, --cache-dir",
                  interrupted: str = "no results were written"):
    """work(progress) with progress bars on stderr; returns (its result, None), or (None, an exit code)
    after one line on stderr: a user's mistake 2, Ctrl-C or SIGTERM 128 + the signal (work unwinds, so
    that no partial results folder is left)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)   # failed trials are reported by hwsearch
    received: list[int] = []

    def interrupt(signum, frame):
        # Ctrl-C and SIGTERM alike: unwind, so that run() removes the partial results folder.
        received.append(signum)
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
    console = Console(stderr=True, quiet=quiet)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True, disable=quiet or not console.is_terminal)  # bars only where they redraw
    try:
        with progress:
            return work(progress), None
    except BaseException as exc:
        if received:   # a signal can surface as any exception when it lands inside a library call
            print(f"hwsearch: interrupted; {interrupted}", file=sys.stderr)
            return None, 128 + received[0]
        if isinstance(exc, HwsearchError):
            print(f"hwsearch: error: {exc}", file=sys.stderr)
            return None, EXIT_USAGE
        if isinstance(exc, OSError):   # unwritable --results or --cache-dir, a full disk: not a bug
            where = f": {exc.filename}" if exc.filename else ""
            print(f"hwsearch: error: {exc.strerror or exc}{where}; check that the folder exists, is writable "
                  f"and has space ({folders})", file=sys.stderr)
            return None, EXIT_USAGE
        raise


def _run_config(args: argparse.Namespace) -> RunConfig:
    """The run config of parsed `_run_arguments`, checked (HwsearchError with the rule and the fix)."""
    config = RunConfig(target=args.target, budget=args.budget, latency=args.latency, energy=args.energy,
                       objectives=args.objectives, sampler=args.sampler, max_accuracy_drop=args.max_accuracy_drop,
                       model=args.model, data=args.data, input=args.input, eval=args.eval, loss=args.loss,
                       trials=args.trials,
                       top_k=args.top_k, finetune_epochs=args.finetune_epochs, calibration_size=args.calibration,
                       seed=args.seed, results_dir=args.results, cache_dir=args.cache_dir, run_id=args.run_id)
    check(config)
    return config


def _print_summary(s: dict, folder) -> None:
    b, f = s["baseline"], s["final"]
    budgets = ", ".join(f"{k.split('_')[0]} {_si(v, {'size_bytes': 'B', 'latency_s': 's', 'energy_j': 'J'}[k])}"
                        for k, v in s["budgets"].items())
    print(f"hwsearch: {s['model']} on {s['target']}, budget{'s' if len(s['budgets']) > 1 else ''} "
          + (f"{s['budget']} ({s['budget_bytes']:,} bytes)" if list(s["budgets"]) == ["size_bytes"] else budgets))
    kept = "fine-tuned" if f["fine_tuned_kept"] else "compressed, fine-tuning did not help"
    metric = "" if s.get("metric", "top-1 accuracy") == "top-1 accuracy" else f"{s['metric']}, "
    print(f"  accuracy  {b['test_accuracy']:.2%} -> {f['test_accuracy']:.2%} ({metric}test; {kept})")
    print(f"  size      {b['size_bytes']:,} -> {f['size_bytes']:,} bytes ({s['compression_ratio']:.2f}x)")
    print(f"  latency   {_si(b['latency_s'], 's')} -> {_si(f['latency_s'], 's')} (predicted)")
    print(f"  energy    {_si(b['energy_j'], 'J')} -> {_si(f['energy_j'], 'J')} (predicted)")
    print(f"  results   {folder}/ (summary.json, report.md, pareto.png, {s['artifact']})")


def _si(value: float, unit: str) -> str:
    """3.2 ms, 41.0 us, 1.600 mJ: three significant figures at a readable scale."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0), ("m", 1e-3),
                          ("u", 1e-6), ("n", 1e-9)):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


# ---- commands on the cost side --------------------------------------------------------------------

def _run_command(command, argv: list[str]) -> int:
    """Run one command; a user's mistake is one line on stderr and exit 2, Ctrl-C one line and 130."""
    try:
        return command(argv)
    except HwsearchError as exc:
        print(f"hwsearch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hwsearch: interrupted", file=sys.stderr)
        return 130


def _targets(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="hwsearch targets", allow_abbrev=False,
                                description="List the built-in targets, one line each.")
    p.parse_args(argv)
    from cost_models import available_targets, load_target

    for name in available_targets():
        print(_target_line(load_target(name)))
    return 0


def _target_line(target) -> str:
    peaks = ", ".join(f"{c.dtype} {_si(c.macs_per_cycle * target.clock_hz, 'MAC/s').replace(' ', '')}"
                      for c in target.compute)
    memory = ", ".join(f"{m.name} {_bytes(m.capacity_bytes)}" for m in target.memory if m.capacity_bytes >= 1024)
    return (f"{target.name:18s} {target.kind:11s} {peaks} | {memory} | "
            f"DRAM {target.dram.bandwidth_bytes_per_s / 1e9:.4g} GB/s | {target.description}")


def _bytes(n: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} B"


def _cost(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="hwsearch cost", allow_abbrev=False,
        description="Price every layer of a model on a target: MACs, bytes at each memory level, latency, "
                    "energy and what bounds it.")
    p.add_argument("--model", required=True,
                   help="reference architecture (resnet50, mobilenet_v2, ...), digits model (resnet18_digits), "
                        "or package.module:function / path/to/file.py:function returning an nn.Module")
    p.add_argument("--input", required=True, help="shape of one example, e.g. 3x224x224")
    p.add_argument("--target", default=RunConfig().target, help="built-in target name or path to a target YAML")
    p.add_argument("--batch", type=int, default=1, help="images per inference (default 1)")
    p.add_argument("--backend", default="analytical", help="cost model: analytical (default) or zigzag")
    p.add_argument("--top", type=int, default=None, help="print only the N slowest layers (totals stay whole)")
    p.add_argument("--json", action="store_true", help="print JSON: {total: {...}, layers: [...]}")
    args = p.parse_args(argv)
    if args.batch < 1:
        raise HwsearchError(f"--batch must be at least 1, got {args.batch}")
    from cost_models import BACKENDS, load_target
    from hwsearch.cost_report import cost_report, format_table, parse_input

    shape = parse_input(args.input)
    if args.backend not in BACKENDS:
        raise HwsearchError(f"--backend {args.backend!r} is not a cost model: choose one of {', '.join(BACKENDS)}")
    from rich.console import Console
    from rich.progress import Progress

    target = load_target(args.target)
    with Progress(console=Console(stderr=True), transient=True) as progress:
        report = cost_report(model_spec=args.model, input_shape=shape, target=target, batch=args.batch,
                             backend=args.backend, progress=progress)
    print(json.dumps(report, indent=1) if args.json else format_table(report, top=args.top), end="\n" if args.json else "")
    return 0


def _validate(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="hwsearch validate", allow_abbrev=False,
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


def _calibrate(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="hwsearch calibrate", allow_abbrev=False,
        description="Measure this machine's CPU with micro-benchmarks and write it as a target file: cache sizes, "
                    "bandwidth per level, peak MAC rates, fixed costs, and kernel efficiencies fitted on ~24 single "
                    "layers (about half a minute, one core).")
    p.add_argument("what", choices=["host"], help="what to calibrate (this machine's CPU)")
    p.add_argument("--runtime", choices=["onnxruntime", "torch"], default="onnxruntime",
                   help="the runtime whose kernels are measured (default onnxruntime, with int8 kernels)")
    p.add_argument("--output", default=None,
                   help="target file to write (default targets/host.yaml, or targets/host-torch.yaml for torch)")
    args = p.parse_args(argv)
    from pathlib import Path

    from rich.console import Console
    from rich.progress import Progress

    from cost_models.host import RUNTIMES, build_target, measure, write_target
    from cost_models.target import TARGETS_DIR

    output = Path(args.output) if args.output else TARGETS_DIR / f"{RUNTIMES[args.runtime]}.yaml"
    if output.suffix not in (".yaml", ".yml"):
        raise HwsearchError(f"--output {output} must end in .yaml so that --target can load it")
    if output.parent.exists() and not output.parent.is_dir() or output.is_dir():
        raise HwsearchError(f"--output {output} is not a file path in a folder")
    with Progress(console=Console(stderr=True), transient=True) as progress:
        figures = measure(args.runtime, progress)
    text, target, report = build_target(figures)
    write_target(text, output)
    fitted = ", ".join(f"{k} {v:g}" for k, v in report["fitted"].items())
    print(f"hwsearch: wrote {output} ({target.name}: {figures.cpu_model}, {args.runtime})")
    print(f"  peak fp32 {figures.fp32_macs_per_s / 1e9:.1f} GMAC/s"
          + (f", int8 {figures.int8_macs_per_s / 1e9:.1f} GMAC/s" if figures.int8_macs_per_s else "")
          + f"; DRAM {figures.bandwidth['DRAM'] / 1e9:.1f} GB/s; {figures.layer_overhead_s * 1e6:.2f} us per layer")
    print(f"  fitted on {len(report['error'])} single layers: {fitted}; median error "
          f"{report['median_abs_error']:.1%}")
    print(f"  check it on whole models: hwsearch validate --target {output}")
    return 0


# ---- commands for people and pipelines that run many searches ----------------------------------------

def _codesign(argv: list[str]) -> int:
    from hwsearch.codesign import RETRAIN

    p = argparse.ArgumentParser(
        prog="hwsearch codesign", allow_abbrev=False,
        description="Sweep a target's parameters and run the search at every point of the grid: which hardware, "
                    "with which compression, keeps the most accuracy within the budgets, and what it costs in "
                    "latency, energy and area. The model and the proxy table are prepared once for all points.",
        epilog="--sweep KEY=VALUES, once per parameter (the grid is their product). KEY: a dotted path to a "
               "numeric field of the target YAML, list items by index or name (memory.glb.size_bytes, "
               "compute.0.macs_per_cycle, dram.bandwidth_bytes_per_s), or glb_kb (the global buffer in KiB) or pe "
               "(the PE array, e.g. 12x14). VALUES: 64,128,256 or ranges 64:512:x2 (geometric), 0:64:+16 "
               "(arithmetic). " + SIZES)
    # a retrained point exports its best plan: the one its row in the table describes
    _run_arguments(p, top_k=1)
    p.add_argument("--sweep", action="append", default=[], metavar="KEY=VALUES",
                   help="a parameter and its values, e.g. glb_kb=64,128,256 or pe=12x14,16x16 (repeat for a grid)")
    p.add_argument("--retrain", default="front", choices=RETRAIN,
                   help="run whole, with retraining and export: the points on the front across hardware (default), "
                        "every point, or none")
    p.add_argument("--front-tol", type=float, default=5.0, metavar="PERCENT",
                   help="differences smaller than this count as ties on the front (default 5; 0: exact)")
    args = p.parse_args(argv)
    from hwsearch.codesign import CodesignConfig, plan_grid, run_codesign

    config = CodesignConfig(_run_config(args), tuple(args.sweep), args.retrain, args.front_tol)
    points = plan_grid(config)          # every point validated as a target before anything heavy runs
    outcome, code = _long_running(lambda progress: run_codesign(config, progress, points=points), quiet=args.quiet)
    if code is not None:
        return code
    summary, folder = outcome
    _print_codesign(summary, folder)
    return 0


def _print_codesign(s: dict, folder) -> None:
    keys = [sweep["key"] for sweep in s["sweeps"]]
    budgets = ", ".join(f"{k.split('_')[0]} {_si(v, {'size_bytes': 'B', 'latency_s': 's', 'energy_j': 'J'}[k])}"
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
        rows.append([r["id"], *(r["params"][k] for k in keys), area, f"{b['proxy']:.4f}", f"{b['size_bytes']:,} B",
                     _si(b["latency_s"], "s"), _si(b["energy_j"], "J"), "*" if r["on_front"] else "",
                     f"{r['retrained']['test_accuracy']:.2%}" if r["retrained"] else ""])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"  front: {', '.join(s['front'])} (no other point as good on best proxy, latency, energy and area, "
          f"within {s['front_tol_pct']:g}%, and better on one)")
    print(f"  results {folder}/ (report.md, points.csv, accuracy.png, front.png, points/<point>/run/ where retrained)")


def _nightly(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="hwsearch nightly", allow_abbrev=False,
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
    report, code = _long_running(lambda progress: run_nightly(nightly, progress), quiet=args.quiet,
                                 folders="results in the nightly file, --cache-dir",
                                 interrupted=f"the entries finished so far are in {nightly.results}/nightly.json")
    if code is not None:
        return code
    c = report["counts"]
    print(f"hwsearch nightly: {c['entries']} entries: {c['ok']} ok, {c['below floor']} below the accuracy floor, "
          f"{c['failed']} failed ({c['skipped']} finished earlier and skipped)")
    for r in report["entries"]:
        if r["status"] != "ok":
            print(f"  {r['name']}: {r['status']}: {r['error']}")
    print(f"  results {report['results']}/nightly.json")
    return exit_code(report)


def _compare(argv: list[str]) -> int:
    from hwsearch.compare import Tolerances

    d = Tolerances()
    p = argparse.ArgumentParser(
        prog="hwsearch compare", allow_abbrev=False,
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
    from hwsearch.compare import compare, format_table

    result = compare(args.old, args.new, Tolerances(args.accuracy_tol, args.size_tol, args.latency_tol,
                                                    args.energy_tol))
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 1 if result["regressions"] else 0


COMMANDS = {"targets": _targets, "cost": _cost, "validate": _validate, "calibrate": _calibrate,
            "codesign": _codesign, "nightly": _nightly, "compare": _compare}


if __name__ == "__main__":
    sys.exit(main())

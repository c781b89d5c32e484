"""`hwsearch --target cortex-a76 --budget 10MB`: search, retrain, export, report.

    hwsearch --resume RUN                                    continue an interrupted run
    hwsearch worker --storage URL --study NAME               evaluate trials of a run's shared study
    hwsearch inspect results/RUN/model.hws                   what a compressed file holds

For sweeps and pipelines:

    hwsearch codesign --target eyeriss-like --sweep glb_kb=64,128,256 --sweep pe=12x14,16x16 --budget 2MB
    hwsearch nightly nightly.yaml                            a matrix of searches, idempotent
    hwsearch compare OLD NEW                                 regressions between two runs or nightlies (exit 1)

Other commands, on the cost side:

    hwsearch targets                                         the built-in targets, one line each
    hwsearch cost --model resnet50 --input 3x224x224 --target cortex-a76 [--json]
    hwsearch validate --target host                          predicted against measured or published
    hwsearch calibrate host                                  measure this machine into targets/host.yaml

Bad input ends with one line on stderr (what is wrong and how to fix it) and exit 2; a bug
in hwsearch with one line and exit 1. `--debug`, anywhere on the line, adds the traceback.
Ctrl-C or SIGTERM, at any moment from start-up on, ends with one line and 130 or 143.
"""
from __future__ import annotations

import json
import signal
import sys
import traceback

from hwsearch.arguments import Parser
from hwsearch.config import RunConfig, check
from hwsearch.errors import HwsearchError, UsageError

EXIT_BUG = 1            # an error hwsearch did not foresee: a bug, reported in one line (--debug: the traceback)
EXIT_USAGE = 2
EXIT_FLOOR = 3          # the run finished and wrote its folder, but no candidate kept enough accuracy


MAX_SEED = 2**32 - 1    # Optuna's samplers take seeds 0 .. 2^32 - 1
RESUME_OPTIONS = ("--resume", "--results", "--cache-dir", "--quiet")


SIZES = ("Sizes: B, KB, MB, GB are powers of 10 (10MB = 10,000,000 bytes); KiB, MiB, GiB are powers "
         "of 2 (10MiB = 10,485,760 bytes); a bare number is bytes.")


def _parser() -> Parser:
    p = Parser(
        prog="hwsearch",
        description="Find the per-layer compression (rank, sparsity, bits) that keeps the most accuracy "
                    "within file-size, latency and energy budgets on a hardware target, confirm it by retraining "
                    "and export it.",
        epilog=SIZES + " The exported file is at most the budget. Other commands: hwsearch worker | inspect | "
               "targets | cost | validate | calibrate | codesign | nightly | compare (each with --help).")
    _run_arguments(p)
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




def _run_arguments(p: Parser, **defaults) -> None:
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
    p.add_argument("--proxy", default=d.proxy, choices=("weighted", "sum"),
                   help="how per-layer output errors add up to a plan's score: weighted by each layer's measured "
                        "sensitivity (default; the predicted output divergence) or their plain sum")
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
    p.add_argument("--grid", choices=["classic", "default", "full"], default=d.grid,
                   help="per-layer options searched: classic (rank x sparsity x uniform bits), default (plus codebooks, "
                        "data-aware SVD, Tucker-2, spatial separation), full (plus low rank plus sparse and more; "
                        "slow tables)")
    p.add_argument("--structured", action="store_true",
                   help="also prune whole filters and channels (each channel group searched as one unit); slower "
                        "tables")
    p.add_argument("--classifier", choices=["gap"], default=None,
                   help="first replace the fully connected classifier after the last conv by global average pooling "
                        "and one linear layer, and retrain (Hsiao 2017)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of the search and the fine-tuning, 0 to {MAX_SEED} "
                   "(default 0): the same inputs and seed give the same file, byte for byte")
    p.add_argument("--results", default=d.results_dir, help=f"folder for run folders (default {d.results_dir}/)")
    p.add_argument("--cache-dir", default=None, help="trained-model cache (default $HWSEARCH_CACHE or ~/.cache/hwsearch)")
    p.add_argument("--run-id", default=None, help="name of the run folder (default <target>-<budget>-<model>-<UTC time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars; print the summary only")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a command that kept what it finished: `note` says where."""

    def __init__(self, note: str):
        super().__init__(note)
        self.note = note


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    received: list[int] = []

    def interrupt(signum, frame):
        # Ctrl-C and SIGTERM alike, from the first line on: unwind, so that the run folder is cleaned or kept
        received.append(signum)
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        if argv and argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:])
        return _search(argv)
    except SystemExit:
        raise
    except BaseException as exc:
        return _report(exc, received, debug)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _report(exc: BaseException, received: list[int], debug: bool) -> int:
    """One line on stderr for anything that ends a command early; the exit code says which kind."""
    from hwsearch.run_folder import RunKept

    if debug:
        traceback.print_exception(exc)
    kept = exc if isinstance(exc, RunKept) else None
    cause = exc.__cause__ if kept is not None and exc.__cause__ is not None else exc
    keep = (f"; {kept.finished} finished trial{'s' * (kept.finished != 1)} kept: hwsearch --resume {kept.path} "
            "continues the run") if kept else ""
    if received or isinstance(cause, KeyboardInterrupt):
        note = next((e.note for e in (exc, cause) if isinstance(e, Interrupted)), None)
        print("hwsearch: interrupted" + (keep or f"; {note or 'no results were written'}"), file=sys.stderr)
        return 128 + (received[0] if received else signal.SIGINT)
    if isinstance(cause, HwsearchError):
        print(f"hwsearch: error: {cause}{keep}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(cause, BrokenPipeError):     # `hwsearch inspect ... | head`: the reader has all it wanted
        sys.stdout = None
        return 0
    if isinstance(cause, OSError):   # an unwritable --results or --cache-dir, a full disk: not a bug
        where = f": {cause.filename}" if cause.filename else ""
        print(f"hwsearch: error: {cause.strerror or cause}{where}; check that the folder exists, is writable and has "
              f"space (--results, --cache-dir){keep}", file=sys.stderr)
        return EXIT_USAGE
    text = str(cause).strip().splitlines()
    print(f"hwsearch: internal error: {type(cause).__name__}{': ' + text[0] if text else ''}{keep}; this is a bug in "
          "hwsearch: run again with --debug for the traceback and report it", file=sys.stderr)
    return EXIT_BUG


def _search(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.resume is not None:
        extra = sorted({a.split("=")[0] for a in argv if a.startswith("--")} - set(RESUME_OPTIONS))
        if extra:
            raise UsageError(f"--resume continues a run with the settings it started with: {', '.join(extra)} cannot "
                             f"go with it (only {', '.join(RESUME_OPTIONS[1:])})")
        return _searched(args, lambda pipeline, progress: pipeline.resume(
            args.resume, results_dir=args.results, cache_dir=args.cache_dir, progress=progress))
    if args.heartbeat < 1:
        raise UsageError(f"--heartbeat must be at least 1, got {args.heartbeat}")
    if args.storage is not None:
        from hwsearch.storage import kind
        kind(args.storage)
    config = _run_config(args)           # fail fast, before heavy imports
    return _searched(args, lambda pipeline, progress: pipeline.run(config, progress))


def _run_config(args) -> RunConfig:
    """The run config of parsed `_run_arguments`, checked (the rule and the fix, as one line)."""
    if not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed must be between 0 and {MAX_SEED} (the range Optuna's samplers take), got {args.seed}")
    if args.run_id is not None:
        from hwsearch.run_folder import check_run_id
        check_run_id(args.run_id)
    config = RunConfig(target=args.target, budget=args.budget, latency=args.latency, energy=args.energy,
                       objectives=args.objectives, sampler=args.sampler, proxy=args.proxy,
                       max_accuracy_drop=args.max_accuracy_drop,
                       model=args.model, data=args.data, input=args.input, eval=args.eval, loss=args.loss,
                       trials=args.trials,
                       top_k=args.top_k, finetune_epochs=args.finetune_epochs, calibration_size=args.calibration,
                       grid=args.grid, structured=args.structured, classifier=args.classifier,
                       seed=args.seed, results_dir=args.results, cache_dir=args.cache_dir, run_id=args.run_id,
                       storage=getattr(args, "storage", None),
                       heartbeat_s=getattr(args, "heartbeat", RunConfig.heartbeat_s))
    check(config)
    return config


def _with_progress(work, *, quiet: bool):
    """work(progress) with progress bars on stderr (only where they redraw). Errors and signals are
    answered by `main`, in one line."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)   # failed trials are reported by hwsearch
    console = Console(stderr=True, quiet=quiet)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True, disable=quiet or not console.is_terminal)
    with progress:
        return work(progress)


def _searched(args, start) -> int:
    """Run (or resume) the search with progress bars; print the summary; exit 3 below the accuracy floor."""
    from hwsearch import pipeline

    summary, folder = _with_progress(lambda progress: start(pipeline, progress), quiet=args.quiet)
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


# ---- other commands --------------------------------------------------------------------

def _targets(argv: list[str]) -> int:
    p = Parser(prog="hwsearch targets", description="List the built-in targets, one line each.")
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
    p = Parser(
        prog="hwsearch cost",
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


def _calibrate(argv: list[str]) -> int:
    p = Parser(
        prog="hwsearch calibrate",
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


def _worker(argv: list[str]) -> int:
    p = Parser(
        prog="hwsearch worker",
        description="Evaluate trials of a run's study in a database storage, beside the run that created it and "
                    "any other workers, until its queue is empty; that run retrains and exports. The tables are "
                    "rebuilt here from the study's recorded settings and this machine's caches.")
    p.add_argument("--storage", required=True, help="the run's --storage: sqlite:///path.db or postgresql://user@host/db")
    p.add_argument("--study", required=True, help="the study's name: the run's --run-id")
    p.add_argument("--cache-dir", default=None, help="trained-model cache (default $HWSEARCH_CACHE or ~/.cache/hwsearch)")
    p.add_argument("--wait", type=float, default=600.0,
                   help="seconds to wait for the run to create the study and issue its trials (default 600)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.wait < 0:
        raise UsageError(f"--wait must be at least 0 seconds, got {args.wait:g}")
    from rich.console import Console
    from rich.progress import Progress

    import optuna

    from hwsearch.worker import work

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    console = Console(stderr=True, quiet=args.quiet)
    with Progress(console=console, transient=True, disable=args.quiet or not console.is_terminal) as progress:
        done = work(storage_url=args.storage, study_name=args.study, cache_dir=args.cache_dir, wait_s=args.wait,
                    progress=progress)
    print(f"hwsearch worker {done['worker']}: evaluated {done['ran']} trials of study {args.study} "
          f"({done['complete']} of {done['trials']} complete, {done['failed']} failed)")
    return 0


def _inspect(argv: list[str]) -> int:
    p = Parser(prog="hwsearch inspect",
               description="Read a compressed file (model.hws) back, check it whole, and list each layer's option "
                           "and bytes.")
    p.add_argument("file", help="a compressed file written by hwsearch, e.g. results/<run>/model.hws")
    p.add_argument("--json", action="store_true", help="print JSON: {model, bytes, layers: [...]}")
    args = p.parse_args(argv)
    from pathlib import Path

    from hwsearch import artifact

    model, meta = artifact.load(args.file)
    layers = [{"layer": name, "option": model.get_submodule(name).option.label} for name in meta["layers"]]
    size = Path(args.file).stat().st_size
    described = meta["model"].get("name") or meta["model"].get("builder")
    if args.json:
        print(json.dumps({"model": meta["model"], "bytes": size, "layers": layers}, indent=1))
        return 0
    print(f"{args.file}: {described}, {size:,} bytes, {len(layers)} compressed layers; checksum OK, reloads")
    for row in layers:
        print(f"  {row['layer']:32s} {row['option']}")
    return 0


# ---- commands for people and pipelines that run many searches ----------------------------------------

def _codesign(argv: list[str]) -> int:
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
    summary, folder = _with_progress(lambda progress: run_codesign(config, progress, points=points), quiet=args.quiet)
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
        rows.append([r["id"], *(r["params"][k] for k in keys), area, f"{b['proxy']:.4g}", f"{b['size_bytes']:,} B",
                     _si(b["latency_s"], "s"), _si(b["energy_j"], "J"), "*" if r["on_front"] else "",
                     f"{r['retrained']['test_accuracy']:.2%}" if r["retrained"] else ""])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"  front: {', '.join(s['front'])} (no other point as good on best proxy, latency, energy and area, "
          f"within {s['front_tol_pct']:g}%, and better on one)")
    print(f"  results {folder}/ (report.md, points.csv, accuracy.png, front.png, points/<point>/run/ where retrained)")


def _nightly(argv: list[str]) -> int:
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
        report = _with_progress(lambda progress: run_nightly(nightly, progress), quiet=args.quiet)
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


def _compare(argv: list[str]) -> int:
    from hwsearch.compare import Tolerances

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
    from hwsearch.compare import compare, format_table

    result = compare(args.old, args.new, Tolerances(args.accuracy_tol, args.size_tol, args.latency_tol,
                                                    args.energy_tol))
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 1 if result["regressions"] else 0


COMMANDS = {"worker": _worker, "inspect": _inspect, "targets": _targets, "cost": _cost, "validate": _validate,
            "calibrate": _calibrate, "codesign": _codesign, "nightly": _nightly, "compare": _compare}


if __name__ == "__main__":
    sys.exit(main())

"""`hwsearch calibrate`: a CPU target from measurements, of this machine or of the user's own device.

    hwsearch calibrate host                                   # this machine's CPU -> targets/host.yaml
    hwsearch calibrate --device-export kit/                   # the kernels as ONNX files, and a runner
    hwsearch calibrate cortex-a76 --measurements results.csv --name my-phone   # the runner's timings -> my-phone.yaml
"""
from __future__ import annotations

from hwsearch.commands.parser import Parser
from hwsearch.errors import HwsearchError

USAGE = ("hwsearch calibrate host (this machine), hwsearch calibrate --device-export DIR (kernels for another "
         "device), or hwsearch calibrate TARGET --measurements results.csv (that device's timings)")


def main(argv: list[str]) -> int:
    p = Parser(
        prog="hwsearch calibrate",
        description="Measure a CPU with micro-benchmarks and write it as a target file: cache sizes, bandwidth per "
                    "level, peak MAC rates, fixed costs, and kernel efficiencies fitted on 24 single layers. On this "
                    "machine (host, about half a minute, one core), or on your own phone or board: export the "
                    "kernels with --device-export, run the kit's run.py there, and fit its results.csv.")
    p.add_argument("what", nargs="?", default=None,
                   help="host (this machine's CPU), or with --measurements the target the device's file starts from "
                        "(a CPU target: its register file and micro-kernel tile, and its caches and clock where the "
                        "device does not show them)")
    p.add_argument("--runtime", choices=["onnxruntime", "torch"], default="onnxruntime",
                   help="host: the runtime whose kernels are measured (default onnxruntime, with int8 kernels)")
    p.add_argument("--device-export", metavar="DIR", default=None,
                   help="write the calibration kernels as ONNX files, a manifest and run.py (onnxruntime only) into "
                        "DIR, to run on another device")
    p.add_argument("--measurements", metavar="CSV", default=None,
                   help="the results.csv run.py wrote on the device: fit TARGET to it")
    p.add_argument("--name", default=None, help="with --measurements: the new target's name (default TARGET-measured)")
    p.add_argument("--output", default=None,
                   help="target file to write (host: default targets/host.yaml, or targets/host-torch.yaml for torch; "
                        "--measurements: default NAME.yaml here)")
    args = p.parse_args(argv)
    if args.device_export is not None:
        if args.what or args.measurements:
            raise HwsearchError(f"--device-export writes the kit and takes no target or --measurements: {USAGE}")
        return _export(args)
    if args.measurements is not None:
        if not args.what:
            raise HwsearchError(f"--measurements needs the target to start from, e.g. hwsearch calibrate cortex-a76 "
                                f"--measurements {args.measurements}")
        return _fit(args)
    if args.what != "host":
        raise HwsearchError(f"nothing to calibrate{'' if args.what is None else f' for {args.what!r}'}: {USAGE}")
    return _host(args)


def _output(path_text: str):
    from pathlib import Path
    output = Path(path_text)
    if output.suffix not in (".yaml", ".yml"):
        raise HwsearchError(f"--output {output} must end in .yaml so that --target can load it")
    if output.parent.exists() and not output.parent.is_dir() or output.is_dir():
        raise HwsearchError(f"--output {output} is not a file path in a folder")
    return output


def _host(args) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from cost_models.host import RUNTIMES, build_target, measure, write_target
    from cost_models.target import TARGETS_DIR

    output = _output(args.output or str(TARGETS_DIR / f"{RUNTIMES[args.runtime]}.yaml"))
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


def _export(args) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from cost_models.device_kit import export_kit, kernels

    with Progress(console=Console(stderr=True), transient=True) as progress:
        folder = export_kit(args.device_export, progress)
    size = sum(f.stat().st_size for f in folder.iterdir())
    print(f"hwsearch: wrote {folder}/ ({len(kernels())} ONNX kernels, manifest.json, run.py; {size / 1e6:.0f} MB)")
    print("  on the device: pip install onnxruntime; python3 run.py   (about a minute; taskset pins a core)")
    print(f"  then here: hwsearch calibrate TARGET --measurements results.csv --name my-device")
    return 0


def _fit(args) -> int:
    from cost_models.device_kit import calibrated_target, check_base, read_measurements
    from cost_models.host import write_target
    from cost_models.target import load_target
    from hwsearch.config import RUN_ID

    base = load_target(args.what)
    check_base(base)
    name = args.name or f"{base.name}-measured"
    if not RUN_ID.fullmatch(name):
        raise HwsearchError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (it names the target and its file)")
    output = _output(args.output or f"{name}.yaml")
    measured = read_measurements(args.measurements)
    text, target, report = calibrated_target(base, measured, name)
    write_target(text, output)
    fitted = ", ".join(f"{k} {v:g}" for k, v in report["fitted"].items())
    print(f"hwsearch: wrote {output} ({target.name}: {measured.info.get('cpu_model', 'the device')}, onnxruntime "
          f"{measured.info.get('onnxruntime', '')}, from {base.name})")
    print(f"  peak fp32 {target.compute[0].macs_per_cycle * target.clock_hz / 1e9:.1f} GMAC/s; DRAM "
          f"{target.dram.bandwidth_bytes_per_s / 1e9:.1f} GB/s; {target.cpu.layer_overhead_s * 1e6:.2f} us per layer")
    print(f"  fitted on {len(report['error'])} single layers: {fitted}; median error "
          f"{report['median_abs_error']:.1%} (residuals per layer at the end of the file)")
    print(f"  use it: hwsearch --target {output} --budget 10MB")
    return 0

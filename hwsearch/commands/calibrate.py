"""`hwsearch calibrate host`: measure this machine's CPU into a target file."""
from __future__ import annotations

from hwsearch.commands.parser import Parser
from hwsearch.errors import HwsearchError


def main(argv: list[str]) -> int:
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

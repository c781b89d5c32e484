"""`hwsearch cost --model resnet50 --input 3x224x224 --target cortex-a76`: what every layer costs."""
from __future__ import annotations

import json

from hwsearch.commands.parser import Parser
from hwsearch.config import RunConfig
from hwsearch.errors import HwsearchError


def main(argv: list[str]) -> int:
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
    from cost_models.report import cost_report, format_table
    from hwsearch.config import parse_input

    shape = parse_input(args.input)
    if args.backend not in BACKENDS:
        raise HwsearchError(f"--backend {args.backend!r} is not a cost model: choose one of {', '.join(BACKENDS)}")
    from rich.console import Console
    from rich.progress import Progress

    target = load_target(args.target)
    with Progress(console=Console(stderr=True), transient=True) as progress:
        report = cost_report(model=args.model, input_shape=shape, target=target, batch=args.batch,
                             backend=args.backend, progress=progress)
    print(json.dumps(report, indent=1) if args.json else format_table(report, top=args.top), end="\n" if args.json else "")
    return 0

"""`hwsearch inspect results/RUN/model.hws`: what a compressed file holds; runs no code the file names."""
from __future__ import annotations

import json

from hwsearch.commands.parser import Parser


def main(argv: list[str]) -> int:
    p = Parser(prog="hwsearch inspect",
               description="Read a compressed file (model.hws) back, check it whole, and list each layer's option. "
                           "A file of a built-in architecture is rebuilt and reloaded; for one of your own "
                           "architecture, the header is read and checked, and the file is reloaded only into the "
                           "architecture you name (--model) or with --trust-code: a file never chooses what runs.")
    p.add_argument("file", help="a compressed file written by hwsearch, e.g. results/<run>/model.hws")
    p.add_argument("--model", default=None,
                   help="package.module:function or path/to/file.py:function building the file's architecture "
                        "(runs that code)")
    p.add_argument("--trust-code", action="store_true",
                   help="call the builder the file names to rebuild its architecture (only for files you trust)")
    p.add_argument("--json", action="store_true", help="print JSON: {model, bytes, reloaded, layers: [...]}")
    args = p.parse_args(argv)
    from pathlib import Path

    from hwsearch.export import artifact

    header = artifact.read_header(args.file)          # the checksum and the header: no code runs
    spec = header["model"]
    reloads = "name" in spec or args.model is not None or args.trust_code
    if reloads:
        from hwsearch.workloads import load_user_model

        given = load_user_model(args.model) if args.model else None
        model, _ = artifact.load(args.file, model=given, trust_code=args.trust_code)
        layers = [{"layer": name, "option": model.get_submodule(name).option.label} for name in header["layers"]]
    else:
        layers = [{"layer": name, "option": None} for name in header["layers"]]
    size = Path(args.file).stat().st_size
    described = spec.get("name") or spec.get("builder") or spec.get("class")
    if args.json:
        print(json.dumps({"model": spec, "bytes": size, "reloaded": bool(reloads), "layers": layers}, indent=1))
        return 0
    how = "reloads" if reloads else (
        f"not reloaded: options per layer need its architecture, --model {spec.get('builder', 'package.module:function')}"
        + (" or --trust-code" if "builder" in spec else ""))
    print(f"{args.file}: {described}, {size:,} bytes, {len(layers)} compressed layers; checksum OK, {how}")
    for row in layers:
        print(f"  {row['layer']:32s} {row['option'] or ''}".rstrip())
    return 0

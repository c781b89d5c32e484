"""`hwsearch targets`: the built-in targets, one line each."""
from __future__ import annotations

from hwsearch.commands.output import si
from hwsearch.commands.parser import Parser


def main(argv: list[str]) -> int:
    p = Parser(prog="hwsearch targets", description="List the built-in targets, one line each.")
    p.parse_args(argv)
    from hwsearch import api

    for target in api.targets().values():
        print(target_line(target))
    return 0


def target_line(target) -> str:
    peaks = ", ".join(f"{c.dtype} {si(c.macs_per_cycle * target.clock_hz, 'MAC/s').replace(' ', '')}"
                      for c in target.compute)
    memory = ", ".join(f"{m.name} {size_text(m.capacity_bytes)}" for m in target.memory if m.capacity_bytes >= 1024)
    return (f"{target.name:18s} {target.kind:11s} {peaks} | {memory} | "
            f"DRAM {target.dram.bandwidth_bytes_per_s / 1e9:.4g} GB/s | {target.description}")


def size_text(n: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} B"

"""What a hardware point costs in silicon: on-chip bytes, MAC units and an area estimate.

A co-design sweep trades the accuracy a budget leaves against the hardware that buys it,
so each point needs a cost of its own besides latency and energy. The estimate counts
the parts a target describes, with per-unit figures from one published model of an
Eyeriss-like design:

    area = MAC units x MAC + private bytes x register file per byte + shared bytes x SRAM per byte

Private bytes are the memory levels with one copy per lane (PE scratchpads), priced as
register files; shared bytes (global buffers) as SRAM. The figures are Accelergy's for
its Eyeriss-like example at 32 nm (Accelergy-Project/timeloop-accelergy-exercises,
workspace/example_designs/example_designs/eyeriss_like/ref_outputs/default_problem/
timeloop-mapper.ART.yaml and ART_summary.yaml @67b75f2): CACTI for the global buffer, the
Aladdin table for the MAC and the register files. The estimate leaves out the network on
chip, control and I/O, and prices every datapath as that example's 8-bit multiplier with
a 16-bit adder, so it ranks points of one target; it is not a die size (the real Eyeriss,
168 PEs and 181.5 kB of SRAM, has a 12.25 mm^2 core at 65 nm; this gives 1.41 mm^2 at 32 nm).
Only accelerators get an area: a CPU's or GPU's die holds far more than its MAC lanes
and caches.
"""
from __future__ import annotations

import math

from cost_models.target import Target

MAC_UM2 = 191.82            # source: ART mac[1..168]: 8-bit intmultiplier + 16-bit intadder (Aladdin table, 45 nm scaled to 32 nm)
RF_UM2_PER_BYTE = 13.66     # derived: ART ifmap_spad 70.09 + weights_spad 5816.44 + psum_spad 123.63 um^2 per PE over its 24 + 384 + 32 bytes (12, 192 and 16 words of 16 bits)
SRAM_UM2_PER_BYTE = 1.658   # derived: ART shared_glb 217,363.4 um^2 (CACTI, 32 nm) over 16,384 x 64 bits = 131,072 bytes
NODE = "32 nm"              # source: the example's arch.yaml: technology 32nm


def mac_units(target: Target) -> int:
    """Physical MAC units: the largest product of unroll sizes over the compute paths (a path that
    takes several passes per MAC shares the same units), or the peak MACs per cycle without unrolls."""
    return max(math.prod(u.size for u in path.unroll) if path.unroll else round(path.macs_per_cycle)
               for path in target.compute)


def hardware_figures(target: Target) -> dict:
    """On-chip bytes (private and shared), MAC units, peak MAC rate, DRAM bandwidth and, for
    accelerators, the area estimate in mm^2 (None otherwise)."""
    private = sum(level.capacity_bytes for level in target.memory if level.private_to or level.instances > 1)
    shared = sum(level.capacity_bytes for level in target.memory) - private
    units = mac_units(target)
    area = None
    if target.kind == "accelerator":
        area = (units * MAC_UM2 + private * RF_UM2_PER_BYTE + shared * SRAM_UM2_PER_BYTE) * 1e-6
    return {"onchip_bytes": private + shared, "private_bytes": private, "shared_bytes": shared, "mac_units": units,
            "peak_macs_per_s": max(p.macs_per_cycle for p in target.compute) * target.clock_hz,
            "dram_bytes_per_s": target.dram.bandwidth_bytes_per_s, "area_mm2": area}

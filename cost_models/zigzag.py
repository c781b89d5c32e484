"""ZigZag as a cost model: a mapping search and cost simulator for accelerator targets.

ZigZag (KU Leuven, Mei et al., IEEE TC 2021; `pip install zigzag-dse`) searches the
temporal mapping of one layer on a memory hierarchy (LOMA: loop orders and their
allocation to the memory levels) and prices the best one with an access-count cost
model. This backend prices exactly the nests the analytical model prices (`nests`), so
that the two can be compared one to one:

    target  -> one ZigZag accelerator per compute path: the path's `unroll` is the PE
               array (D1, D2, ...), unit energy its pJ/MAC, cycles per MAC = array cells /
               macs_per_cycle; every memory level becomes a ZigZag memory of the same size
               (bits per instance), a read and a write port of our bandwidth (per instance
               for private levels), plus, for the innermost level of an operand, ports to and
               from the datapath; served dimensions = the array dimensions it is not
               `private_to`; DRAM is the top memory, one read-write port of our DRAM
               bandwidth in bytes per cycle at the target clock
    nest    -> one Conv layer O[b][g][k][oy][ox] += W[g][k][c][fy][fx] * I[b][g][c][iy][ix]
               with the nest's sizes and strides, the input clipped to IY x IX, weights
               at the path's operand_bits, inputs and final outputs at activation_bytes,
               partial sums at accumulator_bytes; its spatial mapping is the analytical
               model's greedy unrolling (each array dimension takes the loop dimensions
               it lists, in order, as far as its lanes allow), so both models fill the
               array the same way and differ only in temporal mapping and accounting
    search  -> LOMA over loop orders (`lpf_limit` loop prime factors), minimising latency
               (ties: ZigZag's own energy), or energy (`opt="energy"`)
    result  -> per level (our names, "dram" last): bytes read and written (ZigZag's
               access counts x port width, all operands and directions) and their energy at
               our pJ/B; MAC energy = MACs x pJ/MAC; latency = ZigZag's cycles (stalls, on-
               and off-loading included) / clock; bottleneck = the largest of the array's
               cycles and each level's busy cycles (bytes over bandwidth, datapath ports
               left out), as the analytical model labels it

What ZigZag cannot express, and how it is handled (each pair carries `caveats`):

    elementwise ops      no loop nest to map: priced by the analytical model ("analytical")
                         (pooling is a Conv nest with K = C = 1 and zero-bit weights: ZigZag)
    zero weights         ZigZag runs every MAC and moves dense tensors: no zero skipping
                         (`sparsity.skips`), no zero gating (`sparsity.zero_gating`), no
                         sparse encodings. A pruned option on a target that skips or gates
                         zeros is priced dense ("dense")
    narrow weights       one precision per operand at every level: weights move and are held
                         at the path's operand_bits, so packed sub-operand codes (4-bit weights
                         on a 16-bit path), their unpacking cycles and sparse encodings are
                         not seen ("unpacked")
    resident activations a single layer cannot keep its input from the previous one; when the
                         target keeps activations on chip and the nest's input and output fit
                         the last on-chip level (the analytical model's test), the accelerator
                         used has that level as the top memory of I and O and DRAM holds only
                         weights. If LOMA cannot place the nest that way, it is priced with
                         DRAM at the top ("via-dram")
    warm weights         likewise, a `warm` model starts the weights in the outermost on-chip
                         level holding weights ("weights-via-dram" where they cannot stay there)
    activation operands  a matmul's W is an activation: moved at activation_bytes, not constant
    pooling strides      pooling nests carry no stride; the window steps by round(IY / OY)
    inclusive buffers    LOMA fills levels bottom up and wants each level to hold what the levels
                         below it hold; where private buffers add up to more than the level that
                         feeds them, it finds no mapping at all. The nest is then priced with those
                         buffers shrunk to their share of the level above ("capped")
    spatial mapping      ZigZag cannot unroll a loop beyond its size over several array dimensions
                         (16 x 2 lanes for 24 filters, which the analytical model runs as two tiles
                         side by side), and reduces unrollings beyond an inner memory's capacity; the
                         mapping it used is kept in the cache entry ("remapped" when it is not the
                         analytical model's)
    narrow registers     a level smaller than one operand of the path holds one operand
    bandwidth            ports are whole bits per cycle per instance; the datapath ports pass at least
                         one operand per cycle, and up to one per lane per MAC on paths that take
                         several cycles per MAC (ZigZag would otherwise cut the unrolling)
    overheads            no per-layer fixed overhead (accelerator targets have none)

Results are cached on disk, one JSON file per unique nest, keyed by what ZigZag sees (the
target as ZigZag accelerators, the nest as a layer with its operand widths and spatial
mapping), ZigZag's version and the search settings; an entry that
cannot be read or does not hold finite numbers is recomputed. ZigZag's stages run
in-process without its save stages, so nothing is written outside the cache folder, and
only ZigZag's own loggers are silenced while it runs. With `workers` > 1 cache misses run
in spawned processes: the calling script needs the `if __name__ == "__main__":` guard.

One module of about 670 lines: the translation above, its caveats and the cache key must change
together (a translation change bumps CONVERTER_VERSION), and splitting them would spread one
contract with ZigZag over several files.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwsearch.atomic_write import write_text
from hwsearch.errors import TargetError
from hwsearch.graph import Layer
from hwsearch.compression import Option

from cost_models._base import CostModel, Costs
from cost_models.analytical import AnalyticalCostModel, _per_pair
from cost_models.nests import ELEMENTWISE, MAC, POOL, Nests, build_nests
from cost_models.target import Compute, Target

INSTALL_HINT = "pip install zigzag-dse six"
CONVERTER_VERSION = 3          # bump when the translation to ZigZag changes, so old cache entries are not reused
_OPERAND = {"W": "I2", "I": "I1", "O": "O"}      # our operand -> ZigZag memory operand
_OUR_OPERAND = {v: k for k, v in _OPERAND.items()}
_DIRECTIONS = ("rd_out_to_low", "wr_in_by_low", "rd_out_to_high", "wr_in_by_high")   # ZigZag's DataDirection values
_RELEVANT = {"W": {"G", "K", "C", "FY", "FX"}, "I": {"B", "G", "C", "OY", "OX", "FY", "FX"},
             "O": {"B", "G", "K", "OY", "OX"}}                  # loop dims each operand's index depends on
_TO_DATAPATH = {"W": ("rd_out_to_low",), "I": ("rd_out_to_low",), "O": ("rd_out_to_low", "wr_in_by_low")}
_LOOP_DIMS = ("B", "G", "K", "C", "OY", "OX", "FY", "FX")
_DRAM_BITS = 10 ** 13          # DRAM capacity as ZigZag sees it: never the limit


@dataclass(frozen=True)
class ZigZagCosts(Costs):
    """`Costs` plus, per pair, what ZigZag could not express (comma-separated, "" when none):
    "analytical" (a nest priced by the analytical model), "dense" (zero weights not skipped
    or gated), "unpacked" (weights moved at the path's operand width), "via-dram" (resident
    activations could not be placed), "weights-via-dram" (warm weights could not stay on
    chip), "capped" (private buffers shrunk to fit LOMA), "remapped" (ZigZag's spatial
    mapping is not the analytical model's). `simulate_s` is what the figures cost to
    simulate, read back from the cache on a hit."""
    caveats: np.ndarray = None          # (pairs,) str
    simulate_s: np.ndarray = None       # (pairs,) seconds ZigZag took for the pair's nests when they were simulated


class ZigZagCostModel(CostModel):
    """Prices nests with ZigZag (LOMA temporal mapping search) on an accelerator target.

    Pure: same target, nests and settings give the same Costs (LOMA's search is
    deterministic), and the disk cache makes the second call free. Several processes may
    share a cache folder: each entry is written atomically, and two writers of one entry
    write the same numbers.

    `warm`: the weights are still on chip from the previous inference (`CostModel`); ZigZag then
    starts them in the outermost on-chip level that holds weights. `lpf_limit` bounds LOMA's
    search (loop prime factors ordered exhaustively; ZigZag's default is 6; lower is faster and
    coarser). `opt` is what the mapping minimises: "latency" (ZigZag's default), or "energy"
    (ZigZag's per-access energy; where many mappings reach the same latency, a latency-optimal
    one can move far more on-chip bytes than needed). `cache_dir` defaults to
    `$HWSEARCH_CACHE/zigzag` (or `~/.cache/hwsearch/zigzag`). `workers` > 1 runs cache misses
    in that many processes.
    """

    def __init__(self, target: Target, *, batch: int = 1, warm: bool = False, lpf_limit: int = 6,
                 opt: str = "latency", cache_dir: str | Path | None = None, workers: int = 1):
        super().__init__(target, batch=batch, warm=warm)
        if target.kind != "accelerator":
            raise TargetError(f"the zigzag cost model prices accelerator targets, but {target.name} is a {target.kind} "
                              "target: use the analytical cost model for it")
        if lpf_limit < 1:
            raise ValueError(f"lpf_limit must be at least 1, got {lpf_limit}")
        if opt not in ("latency", "energy"):
            raise ValueError(f"opt must be 'latency' or 'energy', got {opt!r}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.version = _zigzag_version()
        for path in target.compute:
            if not path.unroll:
                raise TargetError(f"target {target.name}: compute path {path.dtype} has no 'unroll' list; ZigZag needs "
                                  "the PE array's dimensions (size and loop dims each takes)")
        self.lpf_limit = lpf_limit
        self.opt = opt
        self.workers = workers
        if cache_dir is None:
            from hwsearch.workloads import default_cache_dir
            cache_dir = default_cache_dir() / "zigzag"
        self.cache_dir = Path(cache_dir)
        self._analytical = AnalyticalCostModel(target, batch=batch, warm=warm)

    # ---- the interface ----------------------------------------------------------------------------

    def price(self, pairs: Sequence[tuple[Layer, Option]], *, sizes: Sequence[int | None] | None = None,
              progress=None) -> ZigZagCosts:
        """Costs of every (layer, option) pair (`sizes` as `CostModel.price`); `progress` (a rich Progress)
        shows the simulations run."""
        nests = build_nests(list(pairs), self.batch, sizes)
        per_nest, caveats = self.price_nests(nests, progress=progress)
        costs = _per_pair(per_nest, nests.owner, len(pairs), self.target.levels)   # as the analytical model sums
        pair_caveats = [set() for _ in pairs]
        for owner, notes in zip(nests.owner.tolist(), caveats):
            pair_caveats[owner] |= notes
        return ZigZagCosts(**{f.name: getattr(costs, f.name) for f in fields(Costs)},
                           caveats=np.array([",".join(sorted(c)) for c in pair_caveats], dtype=object),
                           simulate_s=np.bincount(nests.owner, weights=per_nest["simulate_s"], minlength=len(pairs)))

    def price_nests(self, n: Nests, *, progress=None) -> tuple[dict[str, np.ndarray], list[set[str]]]:
        """Per-nest figures in the analytical model's layout (plus `simulate_s`), and each nest's caveats."""
        t = self.target
        levels = t.levels
        count = len(n)
        out = {"macs": np.zeros(count), "weight_bytes": n.file_bytes.astype(np.float64),
               "latency_s": np.zeros(count), "energy_j": np.zeros(count), "bottleneck": np.zeros(count, dtype=np.int64),
               "reads": np.zeros((count, len(levels))), "writes": np.zeros((count, len(levels))),
               "energy_parts_j": np.zeros((count, 1 + len(levels))), "resident_bytes": np.zeros(count),
               "activation_bytes": np.zeros(count), "simulate_s": np.zeros(count)}
        caveats: list[set[str]] = [set() for _ in range(count)]

        elementwise = np.flatnonzero(n.kind == ELEMENTWISE)
        if len(elementwise):
            rows = self._analytical.price_nests(_take(n, elementwise))
            for key in rows:
                out[key][elementwise] = rows[key]
            for i in elementwise:
                caveats[i].add("analytical")

        jobs = {i: self._job(n, i) for i in np.flatnonzero(n.kind != ELEMENTWISE).tolist()}
        for i, job in jobs.items():
            caveats[i] |= job.pop("caveats")
            # ZigZag holds weights densely at the path's operand width, and so does this figure
            out["resident_bytes"][i] = n.weight_elems[i] * job.pop("weight_bits") / 8
            out["activation_bytes"][i] = job.pop("activation_bytes")
        results = self._results(jobs, progress)
        read_pj = np.array([lv.read_pj_per_byte for lv in t.memory] + [t.dram.read_pj_per_byte])
        write_pj = np.array([lv.write_pj_per_byte for lv in t.memory] + [t.dram.write_pj_per_byte])
        for i, result in results.items():
            caveats[i].update(filter(None, result["fallback"].split(",")))
            if not result["spatial_as_requested"]:
                caveats[i].add("remapped")
            out["macs"][i] = result["macs"] if n.kind[i] == MAC else 0.0
            out["simulate_s"][i] = result["simulate_s"]
            out["latency_s"][i] = result["latency_cycles"] / t.clock_hz
            out["reads"][i], out["writes"][i], busy = self._traffic(result["traffic_bytes"])
            out["energy_parts_j"][i] = 1e-12 * np.array(
                [result["mac_energy_pj"], *(out["reads"][i] * read_pj + out["writes"][i] * write_pj)])
            out["energy_j"][i] = out["energy_parts_j"][i].sum()
            # the bound, labelled as the analytical model labels it: the array's cycles or a level's busy cycles
            out["bottleneck"][i] = int(np.argmax([result["compute_cycles"], -1.0, *busy]))
        return out, caveats

    def _traffic(self, traffic: dict[str, dict[str, dict[str, float]]]) -> tuple[np.ndarray, np.ndarray, list[float]]:
        """Bytes read and written per level (all operands, all directions), and each level's busy cycles.

        A level's busy cycles are its busier port's bytes over its bandwidth, leaving out what the
        datapath reads from (and writes back to) the innermost level of each operand: that is in the
        array's peak, as in the analytical model. DRAM's one port carries reads and writes.
        """
        t = self.target
        innermost = {op: next(lv.name for lv in t.memory if op in lv.operands) for op in ("W", "I", "O")}
        reads, writes, busy = [], [], []
        for level in t.levels:
            moved = {"rd": 0.0, "wr": 0.0}
            fed = {"rd": 0.0, "wr": 0.0}      # not counting the datapath's own operand traffic
            for op, directions in traffic[level].items():
                for name, amount in directions.items():
                    moved[name[:2]] += amount
                    if not (innermost[op] == level and name in _TO_DATAPATH[op]):
                        fed[name[:2]] += amount
            reads.append(moved["rd"])
            writes.append(moved["wr"])
            if level == "dram":
                busy.append((fed["rd"] + fed["wr"]) * t.clock_hz / t.dram.bandwidth_bytes_per_s)
            else:
                busy.append(max(fed.values()) / t.memory[t.levels.index(level)].bandwidth_bytes_per_cycle)
        return np.array(reads), np.array(writes), busy

    # ---- one nest as a ZigZag job -----------------------------------------------------------------

    def _job(self, n: Nests, i: int) -> dict[str, Any]:
        """What ZigZag needs for nest i (plain data: it crosses process boundaries and keys the cache)."""
        t = self.target
        weighted = bool(n.kind[i] == MAC and not n.w_is_activation[i])
        path_index = t.compute_index(int(n.bits[i]) if weighted else 32)     # as the analytical model picks it
        path = t.compute[path_index]
        act_bits = 8 * path.activation_bytes
        w_bits = path.operand_bits if weighted else (act_bits if n.kind[i] == MAC else 0)   # pooling: no weights
        sizes = {d: int(getattr(n, d)[i]) for d in _LOOP_DIMS}
        sy, sx = int(n.SY[i]), int(n.SX[i])
        if n.kind[i] == POOL:     # pooling nests carry no stride: the window steps as the output shrinks the input
            sy = max(1, round(int(n.IY[i]) / sizes["OY"])) if sizes["OY"] > 1 else 1
            sx = max(1, round(int(n.IX[i]) / sizes["OX"])) if sizes["OX"] > 1 else 1
        layer = {
            "id": 0, "name": "nest", "operator_type": "Conv",
            "equation": "O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*I[b][g][c][iy][ix]",
            "dimension_relations": [f"ix={sx}*ox+1*fx", f"iy={sy}*oy+1*fy"],
            "loop_dims": list(_LOOP_DIMS), "loop_sizes": [sizes[d] for d in _LOOP_DIMS],
            "operand_precision": {"W": w_bits, "I": act_bits, "O": 8 * path.accumulator_bytes, "O_final": act_bits},
            "operand_source": {"W": 0} if weighted else {},
            "pr_loop_dims": ["IX", "IY"], "pr_loop_sizes": [int(n.IX[i]), int(n.IY[i])],
        }
        spatial, exact = _greedy_unrolling(path, sizes)
        caveats = set() if exact else {"remapped"}
        if weighted and n.density[i] < 1 and (t.sparsity.skips != "none" or t.sparsity.zero_gating):
            caveats.add("dense")
        stored_bits = 8 * n.file_bytes[i] / max(1.0, float(n.weight_elems[i]))
        if (weighted and t.weights_move == "encoded" and (n.bits[i] < path.operand_bits or n.density[i] < 1)
                and stored_bits < path.operand_bits):
            caveats.add("unpacked")
        # the accelerator as described first; where LOMA cannot place the nest, fallbacks in order, each flagged
        resident = self._resident(n, i, path)
        weights_on_chip = self.warm and weighted
        hardware = []
        for acts in dict.fromkeys((resident, False)):
            for weights in dict.fromkeys((weights_on_chip, False)):
                for capped in (False, True):
                    notes = [note for note, fell in (("via-dram", resident and not acts),
                                                     ("weights-via-dram", weights_on_chip and not weights),
                                                     ("capped", capped)) if fell]
                    hw = self._hardware(path_index, resident=acts, weights_on_chip=weights, capped=capped)
                    if all(hw["memories"] != other["memories"] for _, other in hardware):
                        hardware.append((",".join(notes), hw))
        job = {"hardware": hardware, "layer": layer, "spatial": spatial,
               "cycles_per_op": math.prod(u.size for u in path.unroll) / path.macs_per_cycle,
               "levels": self.target.levels, "lpf_limit": self.lpf_limit, "opt": self.opt}
        # the key is everything ZigZag sees (the target as ZigZag data, not its YAML: the clock, the
        # bandwidths and pJ per byte that turn its counts into our figures are applied on every read)
        key = json.dumps({"v": CONVERTER_VERSION, "zigzag": self.version, "hardware": hardware, "layer": layer,
                          "spatial": spatial, "cycles_per_op": job["cycles_per_op"], "lpf_limit": self.lpf_limit,
                          "opt": self.opt, "temporal_mapping": "uneven"}, sort_keys=True)
        job["key"] = hashlib.sha256(key.encode()).hexdigest()
        job.update(caveats=caveats, weight_bits=w_bits if weighted else 0, activation_bytes=path.activation_bytes)
        return job

    def _resident(self, n: Nests, i: int, path: Compute) -> bool:
        """Whether the nest's activations stay on chip: the analytical model's test, same bytes."""
        t = self.target
        if not t.activations_stay_on_chip or n.kind[i] == ELEMENTWISE:
            return False
        act = path.activation_bytes
        inputs = n.B[i] * n.C[i] * n.IY[i] * n.IX[i] * act
        outputs = n.B[i] * n.K[i] * n.OY[i] * n.OX[i] * act
        return bool(n.G[i] * (inputs + outputs) <= t.memory[-1].capacity_bytes)

    def _hardware(self, path_index: int, *, resident: bool, weights_on_chip: bool, capped: bool) -> dict[str, Any]:
        """The target as ZigZag accelerator data for one compute path (see the module docstring).

        `resident`: inputs and outputs start and end on chip, in the outermost level holding each;
        `weights_on_chip`: so do the weights (a warm model); DRAM holds the rest. `capped`: a private
        level whose copies together outgrow the next level holding the same operand shrinks to its
        share of that level. LOMA fills levels bottom up and needs each
        level to hold what the ones below it hold, so without the cap it finds no mapping at all
        where per-PE buffers add up to more than the buffer that feeds them (Simba's 16 x 64 KiB
        input buffers under a 64 KiB global buffer).
        """
        t = self.target
        path = t.compute[path_index]
        dims = [f"D{k + 1}" for k in range(len(path.unroll))]
        memories: dict[str, Any] = {}
        operand_bits = {"W": path.operand_bits, "I": 8 * path.activation_bytes, "O": 8 * path.accumulator_bytes}
        innermost = {op: next(lv.name for lv in t.memory if op in lv.operands) for op in ("W", "I", "O")}
        cycles_per_mac = math.prod(u.size for u in path.unroll) / path.macs_per_cycle
        for level in t.memory:
            private = set(level.private_to)
            instances = level.instances if private else 1
            served = [u for u in path.unroll if u.name not in private]
            bits_per_cycle = max(1, round(8 * level.bandwidth_bytes_per_cycle / instances))   # per instance
            # The port that feeds the datapath (the innermost level of an operand) passes one operand to
            # every lane it serves per MAC, where the lanes may need different ones; on a path that takes
            # several cycles per MAC it has those cycles to do so. ZigZag cuts unrollings a port cannot
            # feed in one cycle, so the port is widened by up to the cycles per MAC (Simba's 16-bit path:
            # 8 lanes x 16 bits from a 64-bit port over 4 cycles). Other directions keep the bandwidth.
            feeds = [op for op in level.operands if innermost[op] == level.name]
            lanes = {op: math.prod(u.size for u in served if set(u.dims) & _RELEVANT[op]) for op in feeds}
            datapath_bits = max([bits_per_cycle, *(operand_bits[op] for op in feeds)]
                                + [min(operand_bits[op] * lanes[op], math.ceil(bits_per_cycle * cycles_per_mac))
                                   for op in feeds])
            size_bytes = level.size_bytes if private else level.capacity_bytes
            if capped and instances > 1:
                above = [lv.capacity_bytes for lv in t.memory[t.memory.index(level) + 1:]
                         if set(lv.operands) & set(level.operands)]
                size_bytes = max(1, min([size_bytes, *(share // instances for share in above)]))
            operands = [_OPERAND[o] for o in level.operands]
            to_datapath = [f"{_OPERAND[op]}, tl" for op in feeds]
            from_datapath = ["O, fl"] if "O" in feeds else []
            reads = [a for o in operands for a in ((f"{o}, tl", f"{o}, th") if o == "O" else (f"{o}, tl",))]
            writes = [a for o in operands for a in ((f"{o}, fl", f"{o}, fh") if o == "O" else (f"{o}, fh",))]
            ports = [_port("r_port_1", "read", datapath_bits, to_datapath),
                     _port("w_port_1", "write", datapath_bits, from_datapath),
                     _port("r_port_2", "read", bits_per_cycle, [a for a in reads if a not in to_datapath]),
                     _port("w_port_2", "write", bits_per_cycle, [a for a in writes if a not in from_datapath])]
            memories[level.name] = {
                # a register narrower than the path's operand (Simba's 8-bit weight registers on its 16-bit
                # path, where a 16-bit MAC is four 8-bit passes) holds one operand
                "size": max(8 * size_bytes, *(operand_bits[op] for op in level.operands)),
                # ZigZag's energy per access; ours is per byte (`_summary` counts bytes per port width)
                "r_cost": level.read_pj_per_byte * bits_per_cycle / 8,
                "w_cost": level.write_pj_per_byte * bits_per_cycle / 8,
                "area": 0.0, "latency": 1, "operands": operands,
                "ports": [port for port in ports if port["allocation"]],
                "served_dimensions": [d for d, u in zip(dims, path.unroll) if u.name not in private],
            }
        on_chip = ({"I1", "O"} if resident else set()) | ({"I2"} if weights_on_chip else set())
        dram_operands = [o for o in ("I1", "I2", "O") if o not in on_chip]
        dram_bits = max(1, round(8 * t.dram.bandwidth_bytes_per_s / t.clock_hz))
        allocation = [f"{o}, {d}" for o in dram_operands
                      for d in (("fh", "tl", "fl", "th") if o == "O" else ("fh", "tl"))]
        if dram_operands:
            memories["dram"] = {
                "size": _DRAM_BITS, "r_cost": t.dram.read_pj_per_byte * dram_bits / 8,
                "w_cost": t.dram.write_pj_per_byte * dram_bits / 8, "area": 0.0, "latency": 1,
                "operands": dram_operands, "ports": [_port("rw_port_1", "read_write", dram_bits, allocation)],
                "served_dimensions": dims,
            }
        flags = [flag for flag, on in (("resident", resident), ("warm", weights_on_chip), ("capped", capped)) if on]
        name = "-".join([t.name, path.dtype, *flags])
        return {"name": name, "memories": memories,
                "operational_array": {"unit_energy": path.pj_per_mac, "unit_area": 1.0, "dimensions": dims,
                                      "sizes": [u.size for u in path.unroll]}}

    # ---- cache and simulation ---------------------------------------------------------------------

    def _results(self, jobs: dict[int, dict[str, Any]], progress) -> dict[int, dict[str, Any]]:
        """Each job's result: from the cache where a valid entry exists, else simulated (once per unique key)."""
        results: dict[int, dict[str, Any]] = {}
        missing: dict[str, dict[str, Any]] = {}
        for i, job in jobs.items():
            cached = self._load(job["key"], job["levels"])
            if cached is not None:
                results[i] = cached
            else:
                missing.setdefault(job["key"], job)
        if missing:
            task = progress.add_task(f"zigzag {self.target.name}", total=len(missing)) if progress else None
            fresh: dict[str, dict[str, Any]] = {}
            for key, result in self._simulate_all(list(missing.values())):
                self._store(key, result)
                fresh[key] = result
                if progress:
                    progress.advance(task)
            if progress:
                progress.remove_task(task)
            for i, job in jobs.items():
                if i not in results:
                    results[i] = fresh[job["key"]]
        return results

    def _simulate_all(self, jobs: list[dict[str, Any]]):
        if self.workers == 1 or len(jobs) == 1:
            for job in jobs:
                yield job["key"], _simulate(job)
            return
        with ProcessPoolExecutor(max_workers=min(self.workers, len(jobs)), mp_context=get_context("spawn")) as pool:
            futures = [(job["key"], pool.submit(_simulate, job)) for job in jobs]
            for key, future in futures:
                yield key, future.result()

    def _path(self, key: str) -> Path:
        return self.cache_dir / f"{self.target.name}-{key[:24]}.json"

    def _load(self, key: str, levels: list[str]) -> dict[str, Any] | None:
        """A cache entry, or None when it is missing, unreadable or not a complete, finite result."""
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry if _valid(entry, key, levels) else None

    def _store(self, key: str, result: dict[str, Any]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({**result, "key": key}, indent=1))


# ---- helpers ----------------------------------------------------------------------------------------


def _port(name: str, kind: str, bits: int, allocation: list[str]) -> dict[str, Any]:
    # access counts round each transfer up to bandwidth_min bits: a byte keeps the rounding below one operand
    return {"name": name, "type": kind, "bandwidth_min": min(8, bits), "bandwidth_max": bits, "allocation": allocation}


def _greedy_unrolling(path: Compute, sizes: dict[str, int]) -> tuple[dict[str, list[str]], bool]:
    """The analytical model's spatial mapping (`AnalyticalCostModel._spatial`) as ZigZag writes it, and
    whether ZigZag can take it as is.

    Each array dimension takes the loop dimensions it lists, in order, each as far as the
    lanes left allow; a loop already spread over earlier dimensions offers only its tiles.
    ZigZag refuses a loop unrolled beyond its size over several dimensions (16 x 2 lanes for
    24 filters, where the analytical model runs two tiles of 16 side by side); such a factor
    is cut to what fits (16 x 1) and the mapping reported as not the analytical model's.
    """
    remaining = {d: float(s) for d, s in sizes.items()}
    unrolled = {d: 1 for d in sizes}
    mapping: dict[str, list[str]] = {}
    exact = True
    for k, lanes in enumerate(path.unroll):
        left = float(lanes.size)
        entries = []
        for d in lanes.dims:
            u = max(1.0, min(remaining[d], left))
            remaining[d] = math.ceil(remaining[d] / u)
            left = math.floor(left / u)
            fits = max(1, min(int(u), sizes[d] // unrolled[d]))
            exact = exact and fits == int(u)
            unrolled[d] *= fits
            if fits > 1:
                entries.append(f"{d}, {fits}")
        if not entries:      # ZigZag wants every array dimension named: an unrolling of 1 of a loop the nest has
            present = [d for d in lanes.dims if sizes[d] > 1] or [d for d in _LOOP_DIMS if sizes[d] > 1] or ["K"]
            entries.append(f"{present[0]}, 1")
        mapping[f"D{k + 1}"] = entries
    return mapping, exact


def _take(n: Nests, index: np.ndarray) -> Nests:
    return Nests(*(getattr(n, f.name)[index] for f in fields(Nests)))


def _valid(entry: Any, key: str, levels: list[str]) -> bool:
    """Whether a cache entry is a complete result for `key`: every figure present, finite, non-negative."""
    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0

    try:
        if entry["key"] != key:
            return False
        figures = [entry[k] for k in ("latency_cycles", "compute_cycles", "mac_energy_pj", "macs", "simulate_s")]
        for lv in levels:
            for op, directions in entry["traffic_bytes"][lv].items():
                if op not in _OPERAND or set(directions) != set(_DIRECTIONS):
                    return False
                figures += list(directions.values())
        flags = [entry["spatial_as_requested"]]
        if not isinstance(entry["fallback"], str):
            return False
    except (KeyError, TypeError, AttributeError):
        return False
    return all(map(number, figures)) and entry["latency_cycles"] > 0 and all(isinstance(f, bool) for f in flags)


def _zigzag_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
        import zigzag  # noqa: F401
        import six  # noqa: F401   (zigzag imports it without declaring it)
    except ImportError as exc:
        raise ImportError(f"the zigzag cost model needs ZigZag ({exc}): {INSTALL_HINT}") from None
    try:
        return version("zigzag-dse")
    except PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def _quiet():
    """Silence ZigZag's loggers (only theirs) while it runs; restore their level afterwards."""
    logger = logging.getLogger("zigzag")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _simulate(job: dict[str, Any]) -> dict[str, Any]:
    """Run ZigZag on one job; top level so that worker processes can run it. Plain data in, plain data out."""
    start = time.perf_counter()
    failures = []
    with _quiet():
        for note, hardware in job["hardware"]:
            try:
                cme = _search(hardware, job)
                break
            except _NoMapping as exc:
                failures.append(str(exc))
        else:
            raise RuntimeError(f"ZigZag found no mapping for the nest {job['layer']['loop_sizes']} "
                               f"(B G K C OY OX FY FX) with spatial mapping {job['spatial']} on any of: "
                               + "; ".join(failures))
        result = _summary(cme, job["levels"])
    return {**result, "fallback": note, "spatial_as_requested": _same_spatial(cme, job["spatial"]),
            "simulate_s": time.perf_counter() - start}


class _NoMapping(RuntimeError):
    """LOMA found no temporal mapping that fits the memories."""


def _search(hardware: dict[str, Any], job: dict[str, Any]):
    """The latency-optimal CostModelEvaluation of the job's layer on `hardware` (no files written)."""
    from zigzag.cost_model.cost_model import CostModelEvaluation
    from zigzag.mapping.temporal_mapping import TemporalMappingType
    from zigzag.opt.loma.engine import NoValidLoopOrderingFoundException
    from zigzag.parser.accelerator_factory import AcceleratorFactory
    from zigzag.parser.accelerator_validator import AcceleratorValidator
    from zigzag.parser.mapping_validator import MappingValidator
    from zigzag.parser.workload_factory import LayerNodeFactory
    from zigzag.parser.workload_validator import WorkloadValidator
    from zigzag.stages.main import MainStage
    from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
    from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage
    from zigzag.stages.results.reduce_stages import MinimalEnergyStage, MinimalLatencyStage
    from zigzag.stages.stage import Stage

    validator = AcceleratorValidator(hardware)
    data = validator.normalized_data
    if not validator.validate():
        raise ValueError(f"ZigZag rejected the accelerator built from the target: {validator.validator.errors}")
    accelerator = AcceleratorFactory(data).create()
    workload = WorkloadValidator([job["layer"]])
    layer_data = workload.normalized_data
    if not workload.validate():
        raise ValueError(f"ZigZag rejected the layer built from a nest: {workload.validator.errors}")
    mapping = MappingValidator([{"name": "default", "spatial_mapping": job["spatial"],
                                 "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}])
    mapping_data = mapping.normalized_data
    if not mapping.validate():
        raise ValueError(f"ZigZag rejected the spatial mapping {job['spatial']}: {mapping.validator.errors}")
    layer = LayerNodeFactory(layer_data[0], mapping_data).create()
    cycles_per_op = job["cycles_per_op"]

    class Evaluate(Stage):
        """ZigZag's CostModelStage, with the cycles per MAC of a path whose peak is not one MAC per array cell."""

        def __init__(self, list_of_callables, *, accelerator, layer, spatial_mapping, spatial_mapping_int,
                     temporal_mapping, **kwargs):
            super().__init__(list_of_callables, **kwargs)
            self.args = dict(accelerator=accelerator, layer=layer, spatial_mapping=spatial_mapping,
                             spatial_mapping_int=spatial_mapping_int, temporal_mapping=temporal_mapping)

        def run(self):
            yield CostModelEvaluation(**self.args, access_same_data_considered_as_no_access=True,
                                      cycles_per_op=cycles_per_op), None

        def is_leaf(self) -> bool:
            return True

    best = MinimalLatencyStage if job["opt"] == "latency" else MinimalEnergyStage
    stages = [best, SpatialMappingGeneratorStage, best, TemporalMappingGeneratorStage,
              Evaluate]
    main = MainStage(stages, accelerator=accelerator, layer=layer, loma_lpf_limit=job["lpf_limit"],
                     loma_show_progress_bar=False, nb_mappings_generated=1,
                     enable_mix_spatial_mapping_generation=False, access_same_data_considered_as_no_access=True,
                     temporal_mapping_type=TemporalMappingType("uneven"))
    try:
        return main.run()[0][0]
    except (NoValidLoopOrderingFoundException, AssertionError) as exc:
        raise _NoMapping(f"{hardware['name']}: {str(exc).splitlines()[0]}") from exc


def _summary(cme, levels: list[str]) -> dict[str, Any]:
    """Our figures from one CostModelEvaluation: bytes per level, operand and direction (energy follows from
    bytes x pJ/B: ZigZag's own energy is per access of a port's width, and our ports differ in width)."""
    from zigzag.mapping.data_movement import DataDirection

    traffic = {lv: {} for lv in levels}
    hierarchy = cme.accelerator.memory_hierarchy
    links = cme.layer.memory_operand_links
    for layer_op, accesses in cme.memory_word_access.items():
        mem_op = links.layer_to_mem_op(layer_op)
        operand = _OUR_OPERAND[str(mem_op)]
        for mem_level, count in zip(hierarchy.get_memory_levels(mem_op), accesses):
            moved = traffic[mem_level.name].setdefault(operand, {d: 0.0 for d in _DIRECTIONS})
            for direction in DataDirection:
                width = mem_level.get_max_bandwidth(mem_op, direction) or 0
                moved[str(direction)] += count.get(direction) * width / 8    # accesses are words of the port width
    return {"latency_cycles": float(cme.latency_total2), "compute_cycles": float(cme.ideal_temporal_cycle),
            "mac_energy_pj": float(cme.mac_energy), "macs": float(cme.layer.total_mac_count),
            "traffic_bytes": traffic,
            "spatial_mapping": str(cme.layer.spatial_mapping), "temporal_mapping": str(cme.temporal_mapping)}


def _same_spatial(cme, requested: dict[str, list[str]]) -> bool:
    """Whether ZigZag used the requested unrolling (factors of 1 and loops of size 1 aside)."""
    used = {str(oa): {str(d): float(f) for d, f in single.items() if float(f) > 1}
            for oa, single in cme.layer.spatial_mapping.items()}
    sizes = {str(d): s for d, s in cme.layer.layer_dim_sizes.items()}
    for oa, entries in requested.items():
        want = {e.split(", ")[0]: float(e.split(", ")[1]) for e in entries}
        want = {d: f for d, f in want.items() if f > 1 and sizes.get(d, 1) > 1}
        if set(want) != set(used.get(oa, {})):
            return False
        # ZigZag may store a non-divisor unrolling as the fraction that makes the temporal remainder whole
        if any(math.ceil(sizes[d] / f) != math.ceil(sizes[d] / used[oa][d]) for d, f in want.items()):
            return False
    return True

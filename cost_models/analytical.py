"""The analytical cost model: reuse-aware traffic, per-level roofline latency, access-count energy.

For every loop nest (see `nests`), vectorised over all nests of all (layer, option) pairs:

1. Compute: the MACs the hardware executes (zeros skipped only where the target says
   so), divided by the datapath's peak for the weights' bit width, the share of the
   parallel lanes the layer's shape fills (`Compute.unroll`), and the runtime's kernel
   efficiency for that shape on CPUs and GPUs (register tiles, depthwise, Winograd,
   thread-block waves). Weights stored narrower than the datapath are widened on the
   way in (`unpack_cycles_per_weight`).
2. Traffic: bytes of weights, inputs and outputs across every memory boundary from the
   best tiling each level allows (`reuse`); weights move as the file stores them
   (sparse encoding and sub-byte codes included), activations at the path's width.
3. Latency = fixed per-layer overhead + max(compute time, each level's bytes / its
   bandwidth, DRAM bytes / DRAM bandwidth): the largest term is the bottleneck.
4. Energy = executed MACs x pJ/MAC + bytes read and written at each level x its pJ/B.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hwsearch.graph import Layer
from hwsearch.compression import Option

from cost_models._base import Costs, CostModel
from cost_models.nests import ELEMENTWISE, MAC, POOL, Nests, build_nests
from cost_models.reuse import Shapes, Traffic, boundary


_LOOP_DIMS = ("B", "G", "K", "C", "OY", "OX", "FY", "FX")
_REUSES_W = ("B", "OY", "OX")          # lanes over these share one weight
_REUSES_I = ("K",)                     # lanes over these share one input
_REDUCES_O = ("C", "FY", "FX")         # lanes over these add into one output


class AnalyticalCostModel(CostModel):

    def price(self, pairs: Sequence[tuple[Layer, Option]], *, sizes: Sequence[int | None] | None = None) -> Costs:
        nests = build_nests(list(pairs), self.batch, sizes)
        per_nest = self.price_nests(nests)
        return _per_pair(per_nest, nests.owner, len(pairs), self.target.levels)

    # ---- one pass over all nests -----------------------------------------------------------------

    def price_nests(self, n: Nests) -> dict[str, np.ndarray]:
        t = self.target
        levels = t.memory
        weighted = (n.kind == MAC) & ~n.w_is_activation.astype(bool)
        path = self._paths(n)
        p_macs = np.array([c.macs_per_cycle for c in t.compute])[path]
        p_pj = np.array([c.pj_per_mac for c in t.compute])[path]
        p_operand = np.array([c.operand_bits for c in t.compute])[path] / 8
        p_act = np.array([c.activation_bytes for c in t.compute], dtype=np.float64)[path]
        p_acc = np.array([c.accumulator_bytes for c in t.compute], dtype=np.float64)[path]
        p_unpack = np.array([c.unpack_cycles_per_weight for c in t.compute])[path]

        dense_macs = n.macs
        w_elems = n.weight_elems
        # weights move as stored; a toolchain narrows weights wider than the datapath before deployment
        with np.errstate(divide="ignore", invalid="ignore"):
            stored = np.where(weighted, n.file_bytes / np.maximum(w_elems, 1), p_act)
        # (at the path's width, with a per-row scale as the file keeps for integer codes)
        scale_per_weight = 4.0 / np.maximum(n.C * n.FY * n.FX, 1)
        # (codebook indices stay as they are: only the codebook would be narrowed)
        shared = n.shared.astype(bool)
        stored = np.where(weighted & (n.bits > p_operand * 8) & ~shared,
                          stored * p_operand * 8 / n.bits + scale_per_weight, stored)
        dense_weights = t.weights_move == "dense"
        if dense_weights:                   # expanded at load: every weight at the path's width, zeros included
            stored = np.where(weighted, p_operand, stored)
        operand = np.where(weighted, p_operand, p_act)

        macs = dense_macs * self._kept_share(n, weighted)
        resident = np.where(weighted, w_elems * stored, 0.0)          # what the runtime holds, all taps
        if t.cpu is not None and t.cpu.skips_padding:    # taps that only ever meet padding: no MACs, no weights read
            macs = macs * n.tap_share
            stored = stored * np.where(weighted, n.weight_share, 1.0)
        unroll, reuse_w, reuse_i, reduce_o = self._spatial(n, path)
        efficiency, work = self._kernel_efficiency(n, weighted, path)
        compute_cycles = np.where(n.kind == ELEMENTWISE, n.B * n.out_elems / p_macs,
                                  macs * work / (p_macs * unroll * efficiency))

        # per-group extents and bytes
        G = n.G.astype(np.float64)
        R = (n.FY * n.FX).astype(np.float64)
        elementwise = n.kind == ELEMENTWISE
        # a stride longer than the kernel skips rows and columns: only those some output touches are read
        gap_y, gap_x = n.FY < n.SY, n.FX < n.SX
        IY = np.where(gap_y, np.minimum(n.IY, n.OY * n.FY), n.IY).astype(np.float64)
        IX = np.where(gap_x, np.minimum(n.IX, n.OX * n.FX), n.IX).astype(np.float64)
        s = Shapes(
            P=n.positions, K=n.K.astype(np.float64), C=n.C.astype(np.float64), R=R, OX=n.OX.astype(np.float64),
            IX=IX, IYall=n.B * IY, SY=np.where(gap_y, n.FY, n.SY).astype(np.float64),
            SX=np.where(gap_x, n.FX, n.SX).astype(np.float64), FYe=n.FY.astype(np.float64),
            FXe=n.FX.astype(np.float64),
            Wg=np.where(n.kind == MAC, n.K * n.C * R * stored, 0.0),
            Ig=np.where(elementwise, n.B * n.in_elems * p_act, n.B * n.C * IY * IX * p_act),
            Og=np.where(elementwise, n.B * n.out_elems * p_act, n.B * n.K * n.OY * n.OX * p_act),
            wbe=stored, abe=p_act, obe=p_act)

        # what the datapath pulls from the innermost level it reads (per group)
        per_group_macs = macs / G
        inner = Traffic(per_group_macs * operand / reuse_w, per_group_macs * p_act / reuse_i,
                        per_group_macs * p_acc / reduce_o)
        inner = Traffic(np.where(n.kind == MAC, inner.W, 0.0), np.where(elementwise, s.Ig, inner.I),
                        np.where(n.kind == MAC, inner.O, s.Og))
        crossing = [inner]
        for j, level in enumerate(levels):
            held = tuple(op in level.operands for op in ("W", "I", "O"))
            # operands a level does not hold pass through at the width of the memory they come from, so the
            # datapath's side (weights unpacked to operand width) is no bound for the first boundary
            crossing.append(boundary(s, level.capacity_bytes, held, crossing[-1], monotone=j > 0))
        last = crossing[-1]
        if t.activations_stay_on_chip:      # activations that fit stay in the last level between layers
            fits = G * (s.Ig + s.Og) <= levels[-1].capacity_bytes
            last = Traffic(last.W, np.where(fits, 0.0, last.I), np.where(fits, 0.0, last.O))
        if self.warm:                       # the weights never left the last level since the previous inference
            last = Traffic(np.zeros_like(last.W), last.I, last.O)
        crossing[-1] = last

        # bytes read and written at each level (all groups): a level holding an operand takes it in from
        # outside and hands it inwards; outputs go the other way; the datapath read-modify-writes partial sums
        # the datapath's own operand reads are in its peak (register and PE files are built for it): they
        # cost energy but no level time
        n_levels = len(levels) + 1
        reads = np.zeros((len(n), n_levels))
        writes = np.zeros((len(n), n_levels))
        datapath = np.zeros((len(n), n_levels))
        for j, level in enumerate(levels):
            inside, outside = crossing[j], crossing[j + 1]
            for operand_name in ("W", "I", "O"):
                if operand_name not in level.operands:
                    continue
                first = all(operand_name not in lv.operands for lv in levels[:j])
                into, out_of = getattr(inside, operand_name), getattr(outside, operand_name)
                if operand_name == "O":          # outputs flow outwards; partial sums are read back by the MACs
                    into, out_of = out_of, into
                    if first:
                        datapath[:, j] += np.where(n.kind == MAC, crossing[0].O, 0.0) * 2
                        continue
                elif first:
                    datapath[:, j] += into
                    writes[:, j] += out_of
                    continue
                reads[:, j] += into
                writes[:, j] += out_of
        reads[:, -1] = crossing[-1].W + crossing[-1].I
        writes[:, -1] = crossing[-1].O
        reads *= G[:, None]
        writes *= G[:, None]
        datapath *= G[:, None]

        # widening packed or masked weights as they enter the innermost level
        narrow = weighted & ((n.bits < p_operand * 8) | (n.density < 1) | shared) & (not dense_weights)
        unpack_cycles = np.where(narrow, G * crossing[1].W / np.maximum(stored, 1e-12) * p_unpack, 0.0)
        compute_cycles = compute_cycles + unpack_cycles

        bandwidth = np.array([lv.bandwidth_bytes_per_cycle for lv in levels])
        # a level fills from outside while it feeds the inside: the busier direction sets its time
        level_s = np.maximum(reads[:, :-1], writes[:, :-1]) / bandwidth / t.clock_hz
        reads = reads + datapath / 2
        writes = writes + datapath / 2
        dram_s = (reads[:, -1] + writes[:, -1]) / t.dram.bandwidth_bytes_per_s
        compute_s = compute_cycles / t.clock_hz
        overhead_s = np.full(len(n), self._layer_overhead())
        passes = t.cpu.weight_reorder_passes if t.cpu is not None else 0.0
        if passes:     # the runtime repacks the weights on every call, before the layer runs: read them, write them
            home = -1 if not self.warm else len(levels) - 1
            moved = passes * np.where(weighted, G * s.Wg, 0.0)
            reads[:, home] += moved
            writes[:, home] += moved
            speed = (t.dram.bandwidth_bytes_per_s if not self.warm
                     else levels[-1].bandwidth_bytes_per_cycle * t.clock_hz)
            overhead_s = overhead_s + 2 * moved / speed
        terms = np.column_stack([compute_s, overhead_s, level_s, dram_s])
        latency = overhead_s + np.max(np.column_stack([compute_s, level_s, dram_s]), axis=1)
        bottleneck = np.argmax(terms, axis=1)

        gated = np.where(weighted & t.sparsity.zero_gating, n.density, 1.0)
        mac_j = macs * gated * p_pj * 1e-12
        read_pj = np.array([lv.read_pj_per_byte for lv in levels] + [t.dram.read_pj_per_byte])
        write_pj = np.array([lv.write_pj_per_byte for lv in levels] + [t.dram.write_pj_per_byte])
        level_j = (reads * read_pj + writes * write_pj) * 1e-12
        return {"macs": np.where(n.kind == MAC, macs, 0.0), "weight_bytes": n.file_bytes.astype(np.float64),
                "resident_bytes": resident, "activation_bytes": p_act,
                "latency_s": latency, "energy_j": mac_j + level_j.sum(axis=1), "bottleneck": bottleneck,
                "reads": reads, "writes": writes, "energy_parts_j": np.column_stack([mac_j, level_j])}

    # ---- pieces -----------------------------------------------------------------------------------

    def _paths(self, n: Nests) -> np.ndarray:
        """Index of the compute path of every nest: by weight bits; ops without weights at float width."""
        t = self.target
        bits = np.where((n.kind == MAC) & ~n.w_is_activation.astype(bool), n.bits, 32)
        path = np.empty(len(n), dtype=np.int64)
        for b in np.unique(bits):
            path[bits == b] = t.compute_index(int(b))
        return path

    def _kept_share(self, n: Nests, weighted: np.ndarray) -> np.ndarray:
        """Share of the dense MACs executed: all, unless the hardware skips zero weights."""
        sp = self.target.sparsity
        if sp.skips == "none":
            return np.ones(len(n))
        sparsity = 1.0 - n.density
        skip = weighted & (sparsity >= sp.min_sparsity) & (sparsity > 0)
        return np.where(skip, 1.0 - sparsity * sp.skip_efficiency, 1.0)

    def _spatial(self, n: Nests, path: np.ndarray) -> tuple[np.ndarray, ...]:
        """Share of the lanes a nest fills, and how many lanes share one read of a weight, an input, an output.

        Lanes share a read only where the innermost level holding the operand is common to them: a PE's
        private scratchpad feeds its own MACs alone, however many PEs need the same weight.
        """
        size = {d: getattr(n, d).astype(np.float64) for d in _LOOP_DIMS}
        utilisation = np.ones(len(n))
        operands = {"W": _REUSES_W, "I": _REUSES_I, "O": _REDUCES_O}
        private = {op: next((set(lv.private_to) for lv in self.target.memory if op in lv.operands), set())
                   for op in operands}
        shared = {op: np.ones(len(n)) for op in operands}
        for index, compute in enumerate(self.target.compute):
            on = path == index
            if not compute.unroll or not on.any():
                continue
            remaining = {d: size[d].copy() for d in _LOOP_DIMS}
            for lanes in compute.unroll:
                left = np.full(len(n), float(lanes.size))
                taken = np.ones(len(n))
                for d in lanes.dims:
                    u = np.maximum(1.0, np.minimum(remaining[d], left))
                    tiles = np.ceil(remaining[d] / u)
                    utilisation = np.where(on, utilisation * remaining[d] / (tiles * u), utilisation)
                    remaining[d] = np.where(on, tiles, remaining[d])
                    left = np.floor(left / u)
                    taken *= u
                    for op, dims in operands.items():
                        if d in dims and lanes.name not in private[op]:
                            shared[op] = np.where(on, shared[op] * u, shared[op])
                utilisation = np.where(on, utilisation * taken / lanes.size, utilisation)
        return utilisation, shared["W"], shared["I"], shared["O"]

    def _kernel_efficiency(self, n: Nests, weighted: np.ndarray, path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(share of peak the runtime's kernel reaches, work per MAC) for CPU and GPU runtimes; 1 for accelerators."""
        efficiency, work = self._shape_efficiency(n, weighted, path)
        t = self.target
        if t.cpu is None and t.gpu is None:
            return efficiency, work
        factor = np.array([c.kernel_efficiency for c in t.compute])[path]
        own = np.array([c.depthwise_efficiency or 0.0 for c in t.compute])[path]
        depthwise = n.depthwise | (n.kind == POOL)
        efficiency = np.where(depthwise & (own > 0), own, efficiency * factor)
        return efficiency, work

    def _shape_efficiency(self, n: Nests, weighted: np.ndarray, path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = self.target
        ones = np.ones(len(n))
        depthwise = n.depthwise | (n.kind == POOL)
        P, K = n.positions, n.K.astype(np.float64)
        if t.cpu is not None:
            cpu = t.cpu
            mr, nr = cpu.register_tile
            reduction = (n.C * n.FY * n.FX).astype(np.float64)
            # fewer positions than the tile's rows: a matrix-vector kernel, bound by loading weights (memory terms)
            rows = np.where(P < mr, 1.0, P / (np.ceil(P / mr) * mr))
            tile = rows * K / (np.ceil(K / nr) * nr)
            spatial = (n.FY * n.FX > 1) & ~n.w_is_activation.astype(bool)
            share = np.where(spatial, cpu.conv_efficiency or cpu.gemm_efficiency, cpu.gemm_efficiency)
            gemm = share * tile * reduction / (reduction + cpu.reduction_overhead)
            efficiency = np.where(depthwise, cpu.depthwise_efficiency, gemm)
            work = ones.copy()
            if cpu.winograd is not None:
                w = cpu.winograd
                m = w.output_tile
                dtypes = np.array([c.dtype in ("fp32", "fp16") for c in t.compute])[path]
                eligible = (weighted & ~n.depthwise & (n.G == 1) & (n.FY == 3) & (n.FX == 3) & (n.SY == 1) &
                            (n.SX == 1) & (n.C >= w.min_channels) & (n.K >= w.min_channels) & dtypes)
                # multiplies per output fall from 9 to (m + 2)^2 / m^2; a map not a multiple of m pads its tiles
                pad = (n.OY * n.OX) / (np.ceil(n.OY / m) * np.ceil(n.OX / m) * m * m)
                saving = 9 * m * m / (m + 2) ** 2 * w.efficiency
                # where tiles are mostly padding (tiny maps) the direct kernel is cheaper: runtimes pick it
                work = np.where(eligible, np.minimum(1.0, 1.0 / (saving * pad)), 1.0)
                efficiency = np.where(eligible, cpu.conv_efficiency or cpu.gemm_efficiency, efficiency)
            return efficiency, work
        if t.gpu is not None:
            gpu = t.gpu
            bm, bn = gpu.block_tile
            blocks = n.G * np.ceil(P / bm) * np.ceil(K / bn)
            reduction = (n.C * n.FY * n.FX).astype(np.float64)
            # too few blocks to fill the SMs: split the reduction (split-K) while slices stay >= 64 deep
            splits = np.clip(np.floor(gpu.sms / blocks), 1, np.maximum(1, np.floor(reduction / 64)))
            blocks = blocks * splits
            waves = blocks / (np.ceil(blocks / gpu.sms) * gpu.sms)
            tile = P / (np.ceil(P / bm) * bm) * K / (np.ceil(K / bn) * bn)
            gemm = gpu.gemm_efficiency * waves * tile
            return np.where(depthwise, gpu.depthwise_efficiency, gemm), ones
        return ones, ones

    def _layer_overhead(self) -> float:
        t = self.target
        if t.cpu is not None:
            return t.cpu.layer_overhead_s
        if t.gpu is not None:
            return t.gpu.layer_overhead_s
        return 0.0


def _per_pair(per_nest: dict[str, np.ndarray], owner: np.ndarray, n_pairs: int, levels: list[str]) -> Costs:
    """Sum the nests of each (layer, option) pair; its bottleneck is that of its slowest nest."""
    def total(values: np.ndarray) -> np.ndarray:
        if values.ndim == 1:
            return np.bincount(owner, weights=values, minlength=n_pairs)
        return np.stack([np.bincount(owner, weights=values[:, j], minlength=n_pairs)
                         for j in range(values.shape[1])], axis=1)

    order = np.lexsort((per_nest["latency_s"], owner))             # slowest nest of each owner last
    last = np.zeros(n_pairs, dtype=np.int64)
    last[owner[order]] = order
    bottleneck = per_nest["bottleneck"][last] if len(owner) else np.zeros(n_pairs, dtype=np.int64)
    width = np.zeros(n_pairs)
    width[owner] = per_nest["activation_bytes"]                    # every nest of a pair shares its path
    return Costs(tuple(levels), total(per_nest["macs"]), total(per_nest["weight_bytes"]),
                 total(per_nest["latency_s"]), total(per_nest["energy_j"]), bottleneck,
                 total(per_nest["reads"]), total(per_nest["writes"]), total(per_nest["energy_parts_j"]),
                 total(per_nest["resident_bytes"]), width)

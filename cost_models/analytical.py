"""A first analytical cost model: roofline latency and access-count energy, batch 1.

Per layer: MACs (dense unless the target skips zeros), weights read once from DRAM as
stored in the file, activations go to DRAM only when a layer's input and output do not
fit in the last on-chip level. Latency = max(compute time, DRAM time). Energy = MACs x
pJ/MAC + DRAM bytes x pJ/B + bytes into the innermost level x its pJ/B. Tiling and reuse
per memory level are not modelled yet.
"""
from __future__ import annotations

import math

from hwsearch.artifact import layer_bytes
from hwsearch.compress import factor_shapes, kept_count
from hwsearch.layer_graph import Layer
from hwsearch.options import Option

from cost_models._base import Cost, CostModel
from cost_models.target import Target


class AnalyticalCostModel(CostModel):
    def __init__(self, target: Target):
        self.target = target

    def layer_cost(self, layer: Layer, option: Option) -> Cost:
        compute = self.target.compute_for(option.bits)
        positions = layer.out_positions
        shapes = factor_shapes(layer.weight_shape, option)
        macs = 0
        for rows, cols in shapes:
            per_position = rows * cols
            if self.target.zero_skipping:
                per_position = kept_count(per_position, option.sparsity)
            macs += per_position * positions
        weight_bytes = layer_bytes(layer.weight_shape, option)
        act_elems = _per_example(layer.in_shape) + _per_example(layer.out_shape)
        if option.rank is not None:
            act_elems += 2 * option.rank * positions                      # the hidden map: written, then read
        act_bytes = act_elems * compute.activation_bytes
        last_level = self.target.memory[-1].size_bytes
        dram_bytes = weight_bytes + (act_bytes if act_bytes > last_level else 0)
        sram_bytes = weight_bytes + act_bytes
        latency = max(macs / (compute.macs_per_cycle * self.target.clock_hz),
                      dram_bytes / self.target.dram.bandwidth_bytes_per_s)
        energy_pj = (macs * compute.pj_per_mac + dram_bytes * self.target.dram.read_pj_per_byte
                     + sram_bytes * self.target.memory[0].read_pj_per_byte)
        return Cost(macs, weight_bytes, dram_bytes, sram_bytes, latency, energy_pj * 1e-12)


def _per_example(shape: tuple[int, ...]) -> int:
    return math.prod(shape[1:])

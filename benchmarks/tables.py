"""The tables a run builds before its study, for the benchmarks: one built-in model on one target.

The same stages as `hwsearch.runs.pipeline` (workload, layer graph, options, cost and proxy
tables, both cached as a run caches them), without a run folder.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cost_models import CostTable, build_cost_table, load_target, make_cost_model  # noqa: E402
from hwsearch.export import artifact  # noqa: E402
from hwsearch.compression import Option, layer_options  # noqa: E402
from hwsearch.graph import LayerGraph  # noqa: E402
from hwsearch.proxy import ProxyTable, cached_proxy_table  # noqa: E402
from hwsearch.workloads import Workload, default_cache_dir, load_workload  # noqa: E402

OUT = ROOT / "results" / "benchmarks"
CALIBRATION = 256


@dataclass
class Tables:
    work: Workload
    names: list[str]
    options: dict[str, list[Option]]
    costs: CostTable
    proxy: ProxyTable          # weighted by the layers' sensitivities; `.combined("sum")` for the plain sum
    calibration: object        # the calibration images the proxy was measured on

    @property
    def fp32_choice(self) -> dict[str, int]:
        return {name: self.options[name].index(Option()) for name in self.names}

    def plan(self, choice: dict[str, int]) -> dict[str, Option]:
        return {name: self.options[name][index] for name, index in choice.items()}


def tables(model: str = "resnet18_digits", target: str = "cortex-a76", progress=None) -> Tables:
    work = load_workload(model, progress=progress)
    graph = LayerGraph.trace(work.model, work.example)
    layers = graph.compressible()
    names = [layer.name for layer in layers]
    options = {layer.name: layer_options(layer) for layer in layers}
    calibration = work.data.train.take(CALIBRATION)
    proxy, _ = cached_proxy_table(work.model, layers, options, calibration, default_cache_dir(), progress)
    fixed = artifact.fixed_bytes(work.model, model_spec=work.model_spec, layer_names=names)
    costs = build_cost_table(make_cost_model("analytical", load_target(target)), layers, options, fixed, graph,
                             proxy.sizes)     # exact bytes of every fitted option, measured by the proxy pass
    return Tables(work, names, options, costs, proxy, calibration)

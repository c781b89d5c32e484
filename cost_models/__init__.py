"""Per-device cost models: what every (layer, option) costs on a target, and how far to trust it.

    target = load_target("cortex-a76")                     # targets/*.yaml, validated
    costs = build_cost_table(make_cost_model("analytical", target), layers, options)
    costs.totals(choice)                                   # a plan's bytes, latency, energy

One interface (`CostModel.price`), several implementations: `analytical` runs in the
search's inner loop; `zigzag` (a real simulator) confirms accelerator figures. A Timeloop
backend plugs in the same way: implement `CostModel` and add it to `BACKENDS`; nothing in
the search changes. `table` prices every (layer, option) of a model at once and adds the
whole-plan terms; `report` is `hwsearch cost`; `validate`, `calibrate`, `host`,
`microbench` and `measure` check and fit the models against measured and published figures.
"""
from cost_models._base import Cost, CostModel, Costs, weights_stay_on_chip
from cost_models.analytical import AnalyticalCostModel
from cost_models.target import Target, available_targets, load_target

__all__ = ["BACKENDS", "Cost", "CostModel", "CostTable", "Costs", "weights_stay_on_chip", "AnalyticalCostModel",
           "Target", "available_targets", "build_cost_table", "load_target", "make_cost_model", "plan_costs"]

from cost_models.zigzag import ZigZagCostModel   # noqa: E402  (imports ZigZag itself only when built)

BACKENDS = {"analytical": AnalyticalCostModel, "zigzag": ZigZagCostModel}


def make_cost_model(kind: str, target: Target, *, batch: int = 1, warm: bool = False) -> CostModel:
    """Build a cost model by name for one target (warm: weights still on chip from the previous inference)."""
    if kind not in BACKENDS:
        raise ValueError(f"unknown cost model {kind!r}: choose one of {', '.join(sorted(BACKENDS))}")
    return BACKENDS[kind](target, batch=batch, warm=warm)


from cost_models.table import CostTable, build_cost_table, plan_costs   # noqa: E402  (the table prices with the above)

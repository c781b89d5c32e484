"""Per-device cost models. One interface (`CostModel.price`), several implementations.

`analytical` runs in the search's inner loop; `zigzag` (a real simulator) confirms
accelerator figures. A Timeloop backend plugs in the same way: implement `CostModel`
and add it to `BACKENDS`; nothing in the search changes.
"""
from cost_models._base import Cost, CostModel, Costs, weights_stay_on_chip
from cost_models.analytical import AnalyticalCostModel
from cost_models.target import Target, available_targets, load_target

__all__ = ["BACKENDS", "Cost", "CostModel", "Costs", "weights_stay_on_chip", "AnalyticalCostModel", "Target", "available_targets",
           "load_target", "make_cost_model"]

from cost_models.zigzag import ZigZagCostModel   # noqa: E402  (imports ZigZag itself only when built)

BACKENDS = {"analytical": AnalyticalCostModel, "zigzag": ZigZagCostModel}


def make_cost_model(kind: str, target: Target, *, batch: int = 1, warm: bool = False) -> CostModel:
    """Build a cost model by name for one target (warm: weights still on chip from the previous inference)."""
    if kind not in BACKENDS:
        raise ValueError(f"unknown cost model {kind!r}: choose one of {', '.join(sorted(BACKENDS))}")
    return BACKENDS[kind](target, batch=batch, warm=warm)

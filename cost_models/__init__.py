"""Per-device cost models. One interface (`CostModel.layer_cost`), many implementations.

Simulator backends (ZigZag, Timeloop) will implement the same interface and confirm
the analytical figures; `make_cost_model` is where they plug in.
"""
from cost_models._base import Cost, CostModel
from cost_models.analytical import AnalyticalCostModel
from cost_models.target import Target, available_targets, load_target

__all__ = ["Cost", "CostModel", "AnalyticalCostModel", "Target", "available_targets", "load_target", "make_cost_model"]


def make_cost_model(kind: str, target: Target) -> CostModel:
    """Build a cost model by name; only `analytical` exists so far."""
    if kind == "analytical":
        return AnalyticalCostModel(target)
    raise ValueError(f"unknown cost model {kind!r}: choose 'analytical'")
